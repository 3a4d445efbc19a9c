//! Arbitrary template names through the loader and the template cache (both strategies):
//! a typed error or a template, never a panic, and never a file outside the root directory.
//!
//! The root (a temporary directory, made once per process) holds a few templates, a symbolic
//! link to a file outside it and one to a directory outside it; the outside files hold a
//! marker that must never come back. Names reach the cache directly (`get`) and as the
//! dynamic target of `{% include %}` and `{% extends %}` (the dependency path).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use unlocked::template::{FileSystemLoader, MiniJinja, TemplateCache};
use unlocked::{Blocking, LockFree, Strategy};

const MARKER: &str = "OUTSIDE-THE-ROOT";

struct Fixture {
    _dir: tempfile::TempDir,
    /// Canonical path of the root.
    root: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let write = |p: PathBuf, text: &str| std::fs::write(p, text).unwrap();
        write(outside.join("secret.html"), MARKER);
        write(dir.path().join("secret.html"), MARKER);
        write(root.join("base.html"), "[base {% block c %}{% endblock %}]");
        write(
            root.join("page.html"),
            "{% extends \"base.html\" %}{% block c %}page{% endblock %}",
        );
        write(root.join("sub/inc.html"), "inc {{ 1 + 1 }}");
        write(root.join("a's.html"), "quote");
        write(root.join("include.html"), "{% include name %}");
        write(root.join("extends.html"), "{% extends name %}");
        write(
            root.join("choice.html"),
            "{% include [name, \"sub/inc.html\"] %}",
        );
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(outside.join("secret.html"), root.join("leak.html"))
                .unwrap();
            std::os::unix::fs::symlink(&outside, root.join("out")).unwrap();
            std::os::unix::fs::symlink("sub/inc.html", root.join("inside-link.html")).unwrap();
        }
        let root = std::fs::canonicalize(&root).unwrap();
        Fixture { _dir: dir, root }
    })
}

fn through_cache<S: Strategy>(f: &Fixture, name: &str) {
    let cache: TemplateCache<MiniJinja, S> =
        TemplateCache::new(MiniJinja::new(), FileSystemLoader::new([&f.root]));
    let mut reader = cache.reader();
    if let Ok(t) = reader.get(name) {
        assert!(
            t.path().starts_with(&f.root),
            "{name:?} loaded {}",
            t.path().display()
        );
    }
    drop(reader);
    for via in ["include.html", "extends.html", "choice.html"] {
        if let Ok(out) = cache.render(via, &json!({ "name": name })) {
            assert!(
                !out.contains(MARKER),
                "{name:?} through {via} rendered {out:?}"
            );
        }
    }
    if let Ok(out) = cache.render(name, &json!({ "name": "base.html" })) {
        assert!(!out.contains(MARKER), "{name:?} rendered {out:?}");
    }
}

fuzz_target!(|input: &[u8]| {
    let Ok(name) = std::str::from_utf8(input) else {
        return;
    };
    let f = fixture();
    let loader = FileSystemLoader::new([&f.root]);
    let checked = FileSystemLoader::check_name(name);
    match loader.load(name) {
        Ok(source) => {
            assert!(
                checked.is_ok(),
                "{name:?} loaded although check_name refused it"
            );
            assert!(
                source.path.starts_with(&f.root),
                "{name:?} read {}",
                source.path.display()
            );
            assert!(
                !source.text.contains(MARKER),
                "{name:?} read a file outside the root"
            );
        }
        Err(e) => {
            // A typed error that renders (Display) without panicking.
            let _ = e.to_string();
        }
    }
    through_cache::<LockFree>(f, name);
    through_cache::<Blocking>(f, name);
});
