//! [`Apps`]: the model registry (Django's `django.apps.apps`).

use std::any::TypeId;
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use super::error::{LookupError, PopulateError};
use super::record::Model;
use super::store::panic_message;
use crate::sync::{AtomicBool, Ordering, RawMutex, RawThreadId};

type PopulateLock = lock_api::ReentrantMutex<RawMutex, RawThreadId, Cell<bool>>;
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// What the registry knows about one model: its app label, name and Rust type.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModelMeta {
    /// The label of the app the model belongs to (`"blog"`).
    pub app_label: &'static str,
    /// The model's name (`"Article"`).
    pub name: &'static str,
    /// The Rust type registered for it.
    pub type_name: &'static str,
    type_id: TypeId,
}

impl ModelMeta {
    /// The metadata of model type `M`.
    pub fn of<M: Model>() -> Self {
        Self {
            app_label: M::APP_LABEL,
            name: M::NAME,
            type_name: std::any::type_name::<M>(),
            type_id: TypeId::of::<M>(),
        }
    }

    /// `app_label.ModelName`, Django's model label.
    pub fn label(&self) -> String {
        format!("{}.{}", self.app_label, self.name)
    }

    /// `app_label.modelname`, Django's `label_lower` (the lookup key).
    pub fn label_lower(&self) -> String {
        format!("{}.{}", self.app_label, self.name.to_ascii_lowercase())
    }

    /// Whether this is the metadata of type `M`.
    pub fn is<M: Model>(&self) -> bool {
        self.type_id == TypeId::of::<M>()
    }
}

/// One registered app and its models, in registration order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppConfig {
    /// The app's label.
    pub label: &'static str,
    /// Its models, in registration order.
    pub models: Vec<ModelMeta>,
}

/// The published, immutable contents of a populated registry.
struct Catalog {
    apps: Vec<AppConfig>,
    app_index: Map<&'static str, usize>,
    /// `app_label.modelname` → (app index, model index).
    by_label: Map<String, (usize, usize)>,
    by_type: Map<TypeId, (usize, usize)>,
}

impl Catalog {
    fn meta(&self, (app, model): (usize, usize)) -> &ModelMeta {
        &self.apps[app].models[model]
    }
}

/// A hook run once the models are registered (Django's `AppConfig.ready`).
type ReadyHook = Box<dyn FnOnce(&Apps) + Send>;

/// What a registration closure fills in: app configs, models and ready hooks. Nothing is
/// published until the closure returns and everything validates.
pub struct Registrar {
    apps: Vec<AppConfig>,
    hooks: Vec<ReadyHook>,
}

fn check_identifier(label: &str) -> Result<(), PopulateError> {
    let mut chars = label.chars();
    let reason = match chars.next() {
        None => Some("it is empty"),
        Some(c) if !(c.is_ascii_alphabetic() || c == '_') => {
            Some("it must start with an ASCII letter or an underscore")
        }
        _ if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            Some("it may only hold ASCII letters, digits and underscores")
        }
        _ => None,
    };
    match reason {
        Some(reason) => Err(PopulateError::InvalidLabel {
            label: label.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

impl Registrar {
    /// Registers an app config. Its label must be an identifier and unique.
    ///
    /// # Errors
    ///
    /// [`PopulateError::InvalidLabel`], [`PopulateError::DuplicateApp`].
    pub fn app(&mut self, label: &'static str) -> Result<&mut Self, PopulateError> {
        check_identifier(label)?;
        if self.apps.iter().any(|a| a.label == label) {
            return Err(PopulateError::DuplicateApp {
                label: label.to_owned(),
            });
        }
        self.apps.push(AppConfig {
            label,
            models: Vec::new(),
        });
        Ok(self)
    }

    /// Registers model type `M` under `M::APP_LABEL.M::NAME`; its app must be registered first.
    ///
    /// # Errors
    ///
    /// [`PopulateError::InvalidLabel`], [`PopulateError::UnknownApp`],
    /// [`PopulateError::DuplicateModel`] (also for one type registered twice).
    pub fn model<M: Model>(&mut self) -> Result<&mut Self, PopulateError> {
        let meta = ModelMeta::of::<M>();
        check_identifier(meta.name)?;
        let duplicate = self.apps.iter().flat_map(|a| &a.models).any(|m| {
            m.type_id == meta.type_id
                || (m.app_label == meta.app_label && m.name.eq_ignore_ascii_case(meta.name))
        });
        if duplicate {
            return Err(PopulateError::DuplicateModel {
                label: meta.label(),
            });
        }
        let Some(app) = self.apps.iter_mut().find(|a| a.label == meta.app_label) else {
            return Err(PopulateError::UnknownApp {
                model: meta.label(),
                app_label: meta.app_label.to_owned(),
            });
        };
        app.models.push(meta);
        Ok(self)
    }

    /// Adds a hook to run once every model is registered and lookups work (Django's
    /// `AppConfig.ready`). Hooks run in order, on the populating thread; calling
    /// [`Apps::populate`] from one is refused with [`PopulateError::Reentrant`].
    pub fn on_ready(&mut self, hook: impl FnOnce(&Apps) + Send + 'static) -> &mut Self {
        self.hooks.push(Box::new(hook));
        self
    }
}

impl fmt::Debug for Registrar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registrar")
            .field("apps", &self.apps)
            .field("hooks", &self.hooks.len())
            .finish()
    }
}

/// What a successful [`Apps::populate`] call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Populated {
    /// This call registered everything and ran the ready hooks.
    Now,
    /// The registry was already populated (possibly by another thread this call waited for);
    /// this call's closure was not run.
    Already,
}

/// The model registry: apps and their models, registered once, then looked up without a lock.
///
/// [`populate`](Self::populate) is thread-safe and idempotent but not reentrant, like Django's
/// `apps.populate()`: the first caller runs its registration closure, concurrent callers wait
/// for it and then return [`Populated::Already`], and a call from inside the closure (or a
/// ready hook) on the populating thread gets [`PopulateError::Reentrant`]. Once populated,
/// lookups read an immutable catalog published through a `OnceLock`: one atomic load, no lock.
///
/// ```
/// use unlocked::model::{Apps, Model, Populated};
///
/// #[derive(Clone)]
/// struct Article;
/// impl Model for Article {
///     const APP_LABEL: &'static str = "blog";
///     const NAME: &'static str = "Article";
/// }
///
/// static APPS: Apps = Apps::new();
///
/// let outcome = APPS.populate(|reg| {
///     reg.app("blog")?.model::<Article>()?;
///     Ok(())
/// });
/// assert_eq!(outcome, Ok(Populated::Now));
/// assert!(APPS.ready());
/// assert_eq!(APPS.get_model("blog", "article").unwrap().name, "Article");
/// assert!(APPS.get_model_by_label("blog.Article").unwrap().is::<Article>());
/// // Idempotent: a second call changes nothing.
/// assert_eq!(APPS.populate(|_| Ok(())), Ok(Populated::Already));
/// ```
pub struct Apps {
    /// Held for the whole of a populate; the flag says "a populate is running on the holder".
    populate_lock: PopulateLock,
    catalog: OnceLock<Catalog>,
    ready: AtomicBool,
    hook_failure: OnceLock<String>,
}

impl Default for Apps {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Apps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Apps")
            .field("models_ready", &self.models_ready())
            .field("ready", &self.ready())
            .field("models", &self.get_models().count())
            .finish()
    }
}

/// The body of [`Apps::new`], shared by its `const` (normal) and non-`const` (loom) forms.
macro_rules! empty_apps {
    () => {
        Apps {
            populate_lock: PopulateLock::const_new(
                <RawMutex as lock_api::RawMutex>::INIT,
                <RawThreadId as lock_api::GetThreadId>::INIT,
                Cell::new(false),
            ),
            catalog: OnceLock::new(),
            ready: AtomicBool::new(false),
            hook_failure: OnceLock::new(),
        }
    };
}

impl Apps {
    /// An empty registry; usable in a `static`.
    #[cfg(not(unlocked_loom))]
    pub const fn new() -> Self {
        empty_apps!()
    }

    /// An empty registry (loom build: loom atomics are not `const`).
    #[cfg(unlocked_loom)]
    pub fn new() -> Self {
        empty_apps!()
    }

    /// Registers apps and models by running `register` once, publishes them, then runs the
    /// ready hooks it added.
    ///
    /// Thread-safe and idempotent: if the registry is populated, returns
    /// [`Populated::Already`] without running `register`; if another thread is populating,
    /// waits for it (blocking this thread) and then does the same. If `register` fails or
    /// panics, nothing is published and a later call may try again.
    ///
    /// # Errors
    ///
    /// [`PopulateError::Reentrant`] when called from inside `register` or a ready hook on the
    /// populating thread; the [`Registrar`]'s validation errors; [`PopulateError::Registration`]
    /// for an error returned by `register`; [`PopulateError::RegistrationPanicked`];
    /// [`PopulateError::ReadyHookPanicked`] (now or for every call after a hook panicked).
    pub fn populate(
        &self,
        register: impl FnOnce(&mut Registrar) -> Result<(), PopulateError>,
    ) -> Result<Populated, PopulateError> {
        if self.ready() {
            return Ok(Populated::Already);
        }
        // Reentrant: the populating thread gets in again (and finds its flag set); any other
        // thread waits here until the populate running now has finished.
        let loading = self.populate_lock.lock();
        if loading.get() {
            return Err(PopulateError::Reentrant);
        }
        if let Some(message) = self.hook_failure.get() {
            return Err(PopulateError::ReadyHookPanicked {
                message: message.clone(),
            });
        }
        if self.ready() {
            return Ok(Populated::Already);
        }
        loading.set(true);
        // Clears the flag however this call ends (errors and caught panics alike).
        struct Loading<'a>(&'a Cell<bool>);
        impl Drop for Loading<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        let _loading = Loading(&loading);

        let mut registrar = Registrar {
            apps: Vec::new(),
            hooks: Vec::new(),
        };
        match catch_unwind(AssertUnwindSafe(|| register(&mut registrar))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(payload) => {
                return Err(PopulateError::RegistrationPanicked {
                    message: panic_message(&*payload),
                });
            }
        }
        let Registrar { apps, hooks } = registrar;
        let mut catalog = Catalog {
            app_index: Map::default(),
            by_label: Map::default(),
            by_type: Map::default(),
            apps,
        };
        for (a, app) in catalog.apps.iter().enumerate() {
            catalog.app_index.insert(app.label, a);
            for (m, meta) in app.models.iter().enumerate() {
                catalog.by_label.insert(meta.label_lower(), (a, m));
                catalog.by_type.insert(meta.type_id, (a, m));
            }
        }
        // Publishes apps and models at once (the OnceLock's release store); from here on
        // lookups succeed without a lock.
        if self.catalog.set(catalog).is_err() {
            // Only reachable if an earlier populate published and then a hook failed, which
            // returned above.
            unreachable!("the catalog is published once, under the populate lock");
        }
        for hook in hooks {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| hook(self))) {
                let message = panic_message(&*payload);
                let _ = self.hook_failure.set(message.clone());
                return Err(PopulateError::ReadyHookPanicked { message });
            }
        }
        // Release: a thread that sees `ready` sees everything the hooks did before it.
        self.ready.store(true, Ordering::Release);
        Ok(Populated::Now)
    }

    /// Whether every app config is registered (Django's `apps_ready`). Apps and models are
    /// published together here, so this equals [`models_ready`](Self::models_ready).
    pub fn apps_ready(&self) -> bool {
        self.catalog.get().is_some()
    }

    /// Whether every model is registered and lookups work (Django's `models_ready`); true
    /// while the ready hooks run.
    pub fn models_ready(&self) -> bool {
        self.catalog.get().is_some()
    }

    /// Whether `populate` has finished, ready hooks included (Django's `ready`).
    pub fn ready(&self) -> bool {
        // Acquire: pairs with the Release store at the end of `populate`.
        self.ready.load(Ordering::Acquire)
    }

    fn catalog(&self) -> Result<&Catalog, LookupError> {
        self.catalog.get().ok_or(LookupError::NotReady)
    }

    /// The model `model_name` (case-insensitive) of app `app_label`. Takes no lock.
    ///
    /// # Errors
    ///
    /// [`LookupError::NotReady`] before `populate`, [`LookupError::NoSuchApp`],
    /// [`LookupError::NoSuchModel`].
    pub fn get_model(&self, app_label: &str, model_name: &str) -> Result<&ModelMeta, LookupError> {
        let catalog = self.catalog()?;
        let Some(&app) = catalog.app_index.get(app_label) else {
            return Err(LookupError::NoSuchApp {
                app_label: app_label.to_owned(),
            });
        };
        catalog.apps[app]
            .models
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(model_name))
            .ok_or_else(|| LookupError::NoSuchModel {
                app_label: app_label.to_owned(),
                model_name: model_name.to_owned(),
            })
    }

    /// The model with label `app_label.ModelName` (model name case-insensitive). Takes no
    /// lock.
    ///
    /// # Errors
    ///
    /// As [`get_model`](Self::get_model), plus [`LookupError::BadLabel`] without a dot.
    pub fn get_model_by_label(&self, label: &str) -> Result<&ModelMeta, LookupError> {
        let Some((app, model)) = label.split_once('.') else {
            return Err(LookupError::BadLabel {
                label: label.to_owned(),
            });
        };
        let catalog = self.catalog()?;
        let key = format!("{app}.{}", model.to_ascii_lowercase());
        match catalog.by_label.get(&key) {
            Some(&at) => Ok(catalog.meta(at)),
            None => self.get_model(app, model),
        }
    }

    /// The registered metadata of type `M`. Takes no lock.
    ///
    /// # Errors
    ///
    /// [`LookupError::NotReady`], or [`LookupError::NoSuchModel`] if `M` was not registered.
    pub fn get_model_of<M: Model>(&self) -> Result<&ModelMeta, LookupError> {
        let catalog = self.catalog()?;
        catalog
            .by_type
            .get(&TypeId::of::<M>())
            .map(|&at| catalog.meta(at))
            .ok_or_else(|| LookupError::NoSuchModel {
                app_label: M::APP_LABEL.to_owned(),
                model_name: M::NAME.to_owned(),
            })
    }

    /// The app config with this label. Takes no lock.
    ///
    /// # Errors
    ///
    /// [`LookupError::NotReady`], [`LookupError::NoSuchApp`].
    pub fn get_app_config(&self, app_label: &str) -> Result<&AppConfig, LookupError> {
        let catalog = self.catalog()?;
        catalog
            .app_index
            .get(app_label)
            .map(|&a| &catalog.apps[a])
            .ok_or_else(|| LookupError::NoSuchApp {
                app_label: app_label.to_owned(),
            })
    }

    /// Every app config, in registration order (empty before `populate`). Takes no lock.
    pub fn get_app_configs(&self) -> impl Iterator<Item = &AppConfig> + '_ {
        self.catalog.get().into_iter().flat_map(|c| &c.apps)
    }

    /// Every model, app by app, in registration order (empty before `populate`). Takes no
    /// lock.
    pub fn get_models(&self) -> impl Iterator<Item = &ModelMeta> + '_ {
        self.get_app_configs().flat_map(|a| &a.models)
    }
}
