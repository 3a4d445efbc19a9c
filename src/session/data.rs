//! [`SessionData`]: a session's values, shared between versions as a base and an overlay.

use std::cmp::Ordering;
use std::fmt;
use std::slice;
use std::sync::Arc;

use compact_str::CompactString;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use smallvec::SmallVec;

/// Up to this many keys, a lookup scans instead of bisecting (see [`find_key`]).
const LINEAR_FIND_MAX: usize = 8;

/// The overlay's length at which a write that would add a slot first folds the overlay into a
/// new base (or an eighth of the base's length, if that is more: see
/// [`SessionData::overlay_limit`]). Also the overlay's inline capacity: up to this many
/// changes, copying the data allocates nothing. Small because every handle and record
/// carries the inline slots (moved, not only copied, on every load and save), and a request
/// mostly changes one or two keys.
const OVERLAY_MIN: usize = 2;

/// One key and its value. Immutable once built: versions of a session (and the change log
/// of a request, which replays it on a merge) share it by `Arc`.
pub(crate) struct Entry {
    /// Inline up to 24 bytes: copying a key (into the next entry of that key, into a change
    /// log) is then a plain copy, where an `Arc<str>` costs an atomic increment and, later, a
    /// decrement (four of a session save's read-modify-writes).
    pub(crate) key: CompactString,
    pub(crate) value: Value,
}

impl Entry {
    /// The value out of a shared entry: moved if this was the last reference, else cloned.
    pub(crate) fn into_value(entry: Arc<Entry>) -> Value {
        Arc::try_unwrap(entry).map_or_else(|shared| shared.value.clone(), |e| e.value)
    }
}

/// One change on top of the base: a key set to `entry`, or (`removed`) a key of the base
/// removed, `entry` then being the base's entry of that key (only its key is used).
#[derive(Clone)]
struct Slot {
    entry: Arc<Entry>,
    removed: bool,
}

/// Where a key is, for a write.
#[derive(Clone, Copy)]
enum Spot {
    /// In the overlay at this index (set or removed).
    Overlay(usize),
    /// In the base at `base` (and not in the overlay, whose insertion point is `at`).
    Base { base: usize, at: usize },
    /// Nowhere; the overlay's insertion point is `at`.
    Absent { at: usize },
}

/// The index of `key` in `items` (sorted by key, unique keys), for a read.
#[inline(always)]
fn find_key<T>(items: &[T], key: &str, key_of: impl Fn(&T) -> &str) -> Option<usize> {
    if items.len() <= LINEAR_FIND_MAX {
        // A typical session holds a handful of keys: a scan that compares lengths first
        // skips most entries without a byte comparison, where a binary search calls
        // `memcmp` at every probe (callgrind: 57 of a load's 495 instructions were three
        // such calls for one `get`).
        let bytes = key.as_bytes();
        // The first byte before `memcmp`: keys of one length (`user`, `hits`, `cart`) mostly
        // differ there, and the call costs more than the whole comparison it replaces.
        items.iter().position(|e| {
            let k = key_of(e).as_bytes();
            k.len() == bytes.len() && k.first() == bytes.first() && k == bytes
        })
    } else {
        items.binary_search_by(|e| key_of(e).cmp(key)).ok()
    }
}

/// The index of `key` in `items`, or where it would go: for a write.
#[inline]
fn find_slot<T>(items: &[T], key: &str, key_of: impl Fn(&T) -> &str) -> Result<usize, usize> {
    if items.len() <= LINEAR_FIND_MAX {
        if let Some(i) = find_key(items, key, &key_of) {
            return Ok(i);
        }
    }
    // Absent keys (and large sessions) bisect for the insertion point.
    items.binary_search_by(|e| key_of(e).cmp(key))
}

/// A session's data: JSON values under string keys (Django's JSON serializer), in key order.
///
/// Every stored version of a session is immutable, so a save builds the next version from the
/// last one. To keep that cheap, a version is a shared, sorted *base* of entries and a short
/// sorted *overlay* of the keys changed since: copying a session's data bumps one reference
/// count for the base and one per overlay entry (none per key of the base), and a change
/// allocates only the entry it changes. An overlay that outgrows two changes (or an eighth of
/// the base) is folded into a new base by the write that would lengthen it, so a lookup checks
/// at most a few overlay keys before the base. Lookups scan up to 8 keys (lengths first, then
/// bytes) and bisect more. Iteration is in key order (byte order of the keys), as a
/// `serde_json::Map` without `preserve_order` iterates.
///
/// It converts to and from `serde_json::Map<String, Value>` and (de)serializes as a JSON
/// object.
///
/// ```
/// use serde_json::json;
/// use unlocked::session::SessionData;
///
/// let mut data = SessionData::new();
/// data.insert("user_id", 42);
/// data.insert("cart", json!([1, 2]));
/// assert_eq!(data.get("user_id"), Some(&json!(42)));
/// assert_eq!(data.keys().collect::<Vec<_>>(), ["cart", "user_id"]);
/// assert_eq!(serde_json::to_string(&data)?, r#"{"cart":[1,2],"user_id":42}"#);
///
/// let back: SessionData = serde_json::from_str(r#"{"user_id":42,"cart":[1,2]}"#)?;
/// assert_eq!(back, data);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Default)]
pub struct SessionData {
    /// Sorted by key, keys unique; shared between versions. `None` when empty.
    base: Option<Arc<[Arc<Entry>]>>,
    /// Changes on top of `base`: sorted by key, keys unique; a removed slot's key is in `base`.
    overlay: SmallVec<[Slot; OVERLAY_MIN]>,
    /// How many keys there are (the base's, less the removed, plus the overlay's new keys).
    len: usize,
}

impl SessionData {
    /// Empty data.
    pub const fn new() -> Self {
        SessionData {
            base: None,
            overlay: SmallVec::new_const(),
            len: 0,
        }
    }

    /// Data of sorted entries with unique keys.
    fn from_sorted(entries: Vec<Arc<Entry>>) -> Self {
        debug_assert!(entries.is_sorted_by(|a, b| a.key < b.key));
        SessionData {
            len: entries.len(),
            base: (!entries.is_empty()).then(|| Arc::from(entries)),
            overlay: SmallVec::new_const(),
        }
    }

    /// Data of entries in any order; of a repeated key, the last entry wins.
    fn from_unsorted(mut entries: Vec<Arc<Entry>>) -> Self {
        if !entries.is_sorted_by(|a, b| a.key < b.key) {
            // Stable: equal keys keep their order, so the last of a run is the last given.
            entries.sort_by(|a, b| a.key.cmp(&b.key));
            entries.dedup_by(|later, earlier| {
                if later.key == earlier.key {
                    std::mem::swap(later, earlier);
                    true
                } else {
                    false
                }
            });
        }
        SessionData::from_sorted(entries)
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn base(&self) -> &[Arc<Entry>] {
        self.base.as_deref().unwrap_or(&[])
    }

    /// The live entry of `key`. Always inlined, as the old one-vector lookup was: a caller's
    /// literal key then compares as a constant instead of through `bcmp`.
    #[inline(always)]
    fn entry(&self, key: &str) -> Option<&Arc<Entry>> {
        if self.overlay.is_empty() {
            // A version nobody changed since it was folded: the base alone.
            let base = self.base();
            return find_key(base, key, |e| &e.key).map(|i| &base[i]);
        }
        self.entry_overlaid(key)
    }

    /// [`entry`](Self::entry) through the overlay.
    fn entry_overlaid(&self, key: &str) -> Option<&Arc<Entry>> {
        if let Some(i) = find_key(&self.overlay, key, |s| &s.entry.key) {
            let slot = &self.overlay[i];
            return (!slot.removed).then_some(&slot.entry);
        }
        let base = self.base();
        find_key(base, key, |e| &e.key).map(|i| &base[i])
    }

    /// The value under `key`.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entry(key).map(|e| &e.value)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.entry(key).is_some()
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// The values, in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Value> + ExactSizeIterator + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// The keys and values, in key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            inner: self.entries(),
        }
    }

    /// The live entries, in key order.
    fn entries(&self) -> Entries<'_> {
        Entries {
            base: self.base().iter(),
            overlay: self.overlay.iter(),
            remaining: self.len,
        }
    }

    /// Where `key` is.
    #[inline]
    fn locate(&self, key: &str) -> Spot {
        match find_slot(&self.overlay, key, |s| &s.entry.key) {
            Ok(i) => Spot::Overlay(i),
            Err(at) => match find_slot(self.base(), key, |e| &e.key) {
                Ok(base) => Spot::Base { base, at },
                Err(_) => Spot::Absent { at },
            },
        }
    }

    /// The overlay's length from which a new slot first folds it into the base: at least
    /// [`OVERLAY_MIN`], and an eighth of the base, so that building a large session key by
    /// key copies each entry a bounded number of times.
    #[inline]
    fn overlay_limit(&self) -> usize {
        OVERLAY_MIN.max(self.base().len() / 8)
    }

    /// Where `key` is, for a write that may add an overlay slot: folds a full overlay into
    /// the base first.
    #[inline]
    fn locate_for_write(&mut self, key: &str) -> Spot {
        let spot = self.locate(key);
        if !matches!(spot, Spot::Overlay(_)) && self.overlay.len() >= self.overlay_limit() {
            self.compact();
            return self.locate(key);
        }
        spot
    }

    /// Before the data is stored as a version: folds an overlay that holds half or more of
    /// the keys into a new base (a new session's keys all start in the overlay), so that the
    /// copies later requests make of this version bump one count per overlay entry only for
    /// the few keys changed since.
    pub(crate) fn compact_for_storage(&mut self) {
        if self.overlay.len() * 2 >= self.len {
            self.compact();
        }
    }

    /// Folds the overlay into a new base.
    fn compact(&mut self) {
        let merged: Vec<Arc<Entry>> = self.entries().cloned().collect();
        debug_assert_eq!(merged.len(), self.len);
        *self = SessionData::from_sorted(merged);
    }

    /// The live entry at `spot`.
    #[inline]
    fn live(&self, spot: Spot) -> Option<&Arc<Entry>> {
        match spot {
            Spot::Overlay(i) => {
                let slot = &self.overlay[i];
                (!slot.removed).then_some(&slot.entry)
            }
            Spot::Base { base, .. } => Some(&self.base()[base]),
            Spot::Absent { .. } => None,
        }
    }

    /// Puts `entry` (of the key at `spot`) into the overlay; returns its index there and the
    /// slot it replaced.
    #[inline]
    fn put(&mut self, spot: Spot, entry: Arc<Entry>) -> (usize, Option<Slot>) {
        let slot = Slot {
            entry,
            removed: false,
        };
        match spot {
            Spot::Overlay(i) => {
                let old = std::mem::replace(&mut self.overlay[i], slot);
                if old.removed {
                    self.len += 1;
                }
                (i, Some(old))
            }
            Spot::Base { at, .. } => {
                self.overlay.insert(at, slot);
                (at, None)
            }
            Spot::Absent { at } => {
                self.overlay.insert(at, slot);
                self.len += 1;
                (at, None)
            }
        }
    }

    /// Sets the key at `spot` (`key`) to `value`, the key copied from the entry the data holds
    /// for it, if any (a plain copy up to 24 bytes); returns the new entry's overlay index and
    /// the slot it replaced.
    #[inline]
    fn put_value(&mut self, spot: Spot, key: &str, value: Value) -> (usize, Option<Slot>) {
        let key = match spot {
            Spot::Overlay(i) => self.overlay[i].entry.key.clone(),
            Spot::Base { base, .. } => self.base()[base].key.clone(),
            Spot::Absent { .. } => CompactString::from(key),
        };
        self.put(spot, Arc::new(Entry { key, value }))
    }

    /// Sets `key` to `value`; returns the previous value.
    ///
    /// The previous value is cloned out if another version of the session (or this data's
    /// shared base) still holds it; [`set`](Self::set) does not return it and never clones.
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl Into<Value>) -> Option<Value> {
        let key = key.as_ref();
        let spot = self.locate_for_write(key);
        let from_base = match spot {
            Spot::Base { base, .. } => Some(self.base()[base].value.clone()),
            _ => None,
        };
        let (_, replaced) = self.put_value(spot, key, value.into());
        from_base.or_else(|| {
            replaced
                .filter(|s| !s.removed)
                .map(|s| Entry::into_value(s.entry))
        })
    }

    /// Sets `key` to `value`, dropping the previous value.
    pub fn set(&mut self, key: impl AsRef<str>, value: impl Into<Value>) {
        let key = key.as_ref();
        let spot = self.locate_for_write(key);
        drop(self.put_value(spot, key, value.into()));
    }

    /// Sets `key` to `value`; returns the new entry (borrowed).
    pub(crate) fn set_ref(&mut self, key: &str, value: Value) -> &Arc<Entry> {
        let spot = self.locate_for_write(key);
        let (i, _) = self.put_value(spot, key, value);
        &self.overlay[i].entry
    }

    /// A copy of this data with `key` set to `value`, if `key` is in the overlay (set or
    /// removed); else `value` back. The copy shares every entry but that key's, whose old
    /// entry it neither counts nor releases: a request's first write to a key changed since
    /// the last fold (a counter bumped on every request) saves the increment and decrement
    /// of an entry that the record it loaded shares with other threads, two atomic
    /// read-modify-writes on a cache line another core may hold. Returns the copy and the
    /// new entry's overlay index.
    #[inline]
    pub(crate) fn clone_setting(
        &self,
        key: &str,
        value: Value,
    ) -> Result<(SessionData, usize), Value> {
        let Some(at) = find_key(&self.overlay, key, |s| &s.entry.key) else {
            return Err(value);
        };
        let mut value = Some(value);
        let mut overlay = SmallVec::new_const();
        for (i, slot) in self.overlay.iter().enumerate() {
            overlay.push(if i == at {
                Slot {
                    entry: Arc::new(Entry {
                        key: slot.entry.key.clone(),
                        value: value.take().expect("one slot has the key"),
                    }),
                    removed: false,
                }
            } else {
                slot.clone()
            });
        }
        let data = SessionData {
            base: self.base.clone(),
            overlay,
            len: self.len + usize::from(self.overlay[at].removed),
        };
        Ok((data, at))
    }

    /// The entry in overlay slot `i` (of a copy made by [`clone_setting`](Self::clone_setting)).
    #[inline]
    pub(crate) fn overlay_entry(&self, i: usize) -> &Arc<Entry> {
        &self.overlay[i].entry
    }

    /// Sets `key` to `value` and returns the shared entry (for a change log).
    pub(crate) fn set_shared(&mut self, key: &str, value: Value) -> Arc<Entry> {
        let spot = self.locate_for_write(key);
        let (i, _) = self.put_value(spot, key, value);
        Arc::clone(&self.overlay[i].entry)
    }

    /// Puts `entry` in, replacing the entry of its key.
    pub(crate) fn set_entry(&mut self, entry: Arc<Entry>) {
        let spot = self.locate_for_write(&entry.key);
        drop(self.put(spot, entry));
    }

    /// Sets `key` to `f(current value)`; returns the new entry. Used by update operations.
    pub(crate) fn apply<E>(
        &mut self,
        key: &str,
        f: impl FnOnce(Option<&Value>) -> Result<Value, E>,
    ) -> Result<&Entry, E> {
        let spot = self.locate_for_write(key);
        let value = f(self.live(spot).map(|e| &e.value))?;
        let (i, _) = self.put_value(spot, key, value);
        Ok(&self.overlay[i].entry)
    }

    /// Removes `key`; returns its value (cloned out if another version still shares it).
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.take_entry(key).map(Entry::into_value)
    }

    /// Removes `key` and returns its entry.
    pub(crate) fn take_entry(&mut self, key: &str) -> Option<Arc<Entry>> {
        let spot = match self.locate(key) {
            Spot::Absent { .. } => return None,
            Spot::Base { .. } => self.locate_for_write(key),
            overlay => overlay,
        };
        match spot {
            Spot::Absent { .. } => None,
            Spot::Overlay(i) => {
                if self.overlay[i].removed {
                    return None;
                }
                self.len -= 1;
                let base = self.base();
                match find_key(base, key, |e| &e.key) {
                    // The base holds the key: the slot becomes its tombstone.
                    Some(b) => {
                        let tomb = Arc::clone(&base[b]);
                        let slot = &mut self.overlay[i];
                        slot.removed = true;
                        Some(std::mem::replace(&mut slot.entry, tomb))
                    }
                    None => Some(self.overlay.remove(i).entry),
                }
            }
            Spot::Base { base, at } => {
                self.len -= 1;
                let entry = Arc::clone(&self.base()[base]);
                self.overlay.insert(
                    at,
                    Slot {
                        entry: Arc::clone(&entry),
                        removed: true,
                    },
                );
                Some(entry)
            }
        }
    }

    /// Removes `key`, dropping its value; `true` if it was present.
    pub(crate) fn discard(&mut self, key: &str) -> bool {
        self.take_entry(key).is_some()
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        *self = SessionData::new();
    }

    /// A `serde_json::Map` with the same keys and values (copies them).
    pub fn to_map(&self) -> Map<String, Value> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect()
    }
}

impl Clone for SessionData {
    #[inline]
    fn clone(&self) -> Self {
        // A plain loop: `SmallVec`'s own `clone` goes through `extend` (reserve, then a
        // capacity check per item), three times the instructions for the usual one slot.
        let mut overlay = SmallVec::new_const();
        for slot in &self.overlay {
            overlay.push(slot.clone());
        }
        SessionData {
            base: self.base.clone(),
            overlay,
            len: self.len,
        }
    }
}

/// The live entries of a [`SessionData`] in key order: its base and overlay merged, from
/// either end.
#[derive(Clone)]
struct Entries<'a> {
    base: slice::Iter<'a, Arc<Entry>>,
    overlay: slice::Iter<'a, Slot>,
    /// Live entries not yet yielded from either end.
    remaining: usize,
}

impl<'a> Entries<'a> {
    /// The next entry from the front (`back == false`) or the back: the base's and the
    /// overlay's next keys are compared, an overlay slot shadows the base's entry of its key,
    /// a removed slot yields nothing.
    #[inline]
    fn step(&mut self, back: bool) -> Option<&'a Arc<Entry>> {
        while self.remaining > 0 {
            let (b, o) = if back {
                (self.base.as_slice().last(), self.overlay.as_slice().last())
            } else {
                (
                    self.base.as_slice().first(),
                    self.overlay.as_slice().first(),
                )
            };
            let order = match (b, o) {
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(b), Some(o)) => {
                    let order = b.key.cmp(&o.entry.key);
                    if back { order.reverse() } else { order }
                }
                (None, None) => break,
            };
            let pick = |it: &mut slice::Iter<'a, Arc<Entry>>| {
                if back { it.next_back() } else { it.next() }
            };
            let slot = match order {
                Ordering::Less => {
                    self.remaining -= 1;
                    return pick(&mut self.base);
                }
                Ordering::Equal => {
                    pick(&mut self.base);
                    if back {
                        self.overlay.next_back()
                    } else {
                        self.overlay.next()
                    }
                }
                Ordering::Greater => {
                    if back {
                        self.overlay.next_back()
                    } else {
                        self.overlay.next()
                    }
                }
            };
            if let Some(slot) = slot.filter(|s| !s.removed) {
                self.remaining -= 1;
                return Some(&slot.entry);
            }
        }
        None
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = &'a Arc<Entry>;
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.overlay.len() == 0 {
            // The common case of a version nobody changed: the base alone.
            let e = self.base.next()?;
            self.remaining -= 1;
            return Some(e);
        }
        self.step(false)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl DoubleEndedIterator for Entries<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(true)
    }
}

impl ExactSizeIterator for Entries<'_> {}

/// Iterator over a [`SessionData`]'s keys and values, in key order.
#[derive(Clone)]
pub struct Iter<'a> {
    inner: Entries<'a>,
}

impl fmt::Debug for Iter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("remaining", &self.inner.len())
            .finish()
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a Value);
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|e| (&*e.key, &e.value))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.inner.next_back().map(|e| (&*e.key, &e.value))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a SessionData {
    type Item = (&'a str, &'a Value);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl PartialEq for SessionData {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len
            && self
                .entries()
                .zip(other.entries())
                .all(|(a, b)| Arc::ptr_eq(a, b) || (a.key == b.key && a.value == b.value))
    }
}

impl Eq for SessionData {}

impl PartialEq<Map<String, Value>> for SessionData {
    fn eq(&self, other: &Map<String, Value>) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl fmt::Debug for SessionData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: AsRef<str>, V: Into<Value>> FromIterator<(K, V)> for SessionData {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        SessionData::from_unsorted(
            iter.into_iter()
                .map(|(k, v)| {
                    Arc::new(Entry {
                        key: CompactString::from(k.as_ref()),
                        value: v.into(),
                    })
                })
                .collect(),
        )
    }
}

impl<K: AsRef<str>, V: Into<Value>> Extend<(K, V)> for SessionData {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.set(k, v);
        }
    }
}

impl From<Map<String, Value>> for SessionData {
    fn from(map: Map<String, Value>) -> Self {
        // A `Map` is sorted already unless serde_json's `preserve_order` is on somewhere in
        // the build; its keys are unique either way.
        SessionData::from_unsorted(
            map.into_iter()
                .map(|(k, value)| {
                    Arc::new(Entry {
                        key: CompactString::from(k),
                        value,
                    })
                })
                .collect(),
        )
    }
}

impl From<SessionData> for Map<String, Value> {
    fn from(data: SessionData) -> Self {
        // Out of the shared base first, so that entries no other version holds are moved.
        let entries: Vec<Arc<Entry>> = data.entries().cloned().collect();
        drop(data);
        entries
            .into_iter()
            .map(|e| match Arc::try_unwrap(e) {
                Ok(e) => (e.key.into_string(), e.value),
                Err(shared) => (String::from(shared.key.as_str()), shared.value.clone()),
            })
            .collect()
    }
}

impl Serialize for SessionData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (k, v) in self {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for SessionData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DataVisitor;
        impl<'de> Visitor<'de> for DataVisitor {
            type Value = SessionData;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of session data")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<SessionData, A::Error> {
                let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0).min(64));
                // A repeated key: the last one wins, as in `serde_json::Map`.
                while let Some((k, value)) = access.next_entry::<String, Value>()? {
                    entries.push(Arc::new(Entry {
                        key: CompactString::from(k),
                        value,
                    }));
                }
                Ok(SessionData::from_unsorted(entries))
            }
        }
        deserializer.deserialize_map(DataVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorted_unique_and_shared() {
        let mut a: SessionData = [("b", json!(2)), ("a", json!(1)), ("b", json!(3))]
            .into_iter()
            .collect();
        assert_eq!(a.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(a.get("b"), Some(&json!(3)));
        let b = a.clone();
        assert!(
            Arc::ptr_eq(a.base.as_ref().unwrap(), b.base.as_ref().unwrap()),
            "a copy shares its base"
        );
        assert_eq!(
            a.insert("a", 10),
            Some(json!(1)),
            "cloned out of a shared entry"
        );
        assert_eq!(a.overlay.len(), 1, "the change went to the overlay");
        assert_eq!(b.get("a"), Some(&json!(1)), "the copy is untouched");
        assert_eq!(a.remove("b"), Some(json!(3)));
        assert_eq!(a.remove("b"), None);
        assert!(!a.discard("zz"));
        assert_eq!(b.len(), 2);
        assert_eq!(b.keys().collect::<Vec<_>>(), ["a", "b"]);
        let map: Map<String, Value> = a.clone().into();
        assert_eq!(SessionData::from(map), a);
        assert_eq!(a, json!({"a": 10}).as_object().unwrap().clone());
    }

    #[test]
    fn the_overlay_is_folded_when_full_and_before_storage() {
        let mut d: SessionData = (0..4).map(|i| (format!("k{i}"), i)).collect();
        let stored = d.clone();
        d.set("k1", 10);
        d.set("k2", 20);
        assert_eq!(d.overlay.len(), 2);
        assert!(Arc::ptr_eq(
            d.base.as_ref().unwrap(),
            stored.base.as_ref().unwrap()
        ));
        d.set("k1", 11);
        assert_eq!(
            d.overlay.len(),
            2,
            "a key already in the overlay is replaced in place"
        );
        d.set("new", 5);
        assert_eq!(d.overlay.len(), 1, "a third key folded the overlay first");
        assert!(!Arc::ptr_eq(
            d.base.as_ref().unwrap(),
            stored.base.as_ref().unwrap()
        ));
        assert_eq!(d.base().len(), 4);
        assert_eq!(d.len(), 5);
        assert_eq!(d.get("k1"), Some(&json!(11)));
        assert_eq!(
            stored.get("k1"),
            Some(&json!(1)),
            "the stored version is untouched"
        );
        // Half of the keys or more in the overlay: folded before it is stored.
        let mut fresh = SessionData::new();
        fresh.set("a", 1);
        fresh.compact_for_storage();
        assert!(fresh.overlay.is_empty());
        assert_eq!(fresh.get("a"), Some(&json!(1)));
        let mut one_change = stored.clone();
        one_change.set("k0", 0);
        one_change.compact_for_storage();
        assert_eq!(
            one_change.overlay.len(),
            1,
            "one change of four stays an overlay"
        );
        // A removal of a base key leaves a tombstone; setting it again revives it.
        let mut t = stored.clone();
        assert_eq!(t.remove("k3"), Some(json!(3)));
        assert!(t.overlay[0].removed);
        assert_eq!((t.len(), t.get("k3")), (3, None));
        assert_eq!(t.insert("k3", 33), None);
        assert_eq!((t.len(), t.get("k3")), (4, Some(&json!(33))));
        t.clear();
        assert!(t.is_empty() && t.iter().next().is_none());
    }

    #[test]
    fn a_copy_setting_an_overlay_key_leaves_its_old_entry_alone() {
        let stored: SessionData = (0..4).map(|i| (format!("k{i}"), i)).collect();
        let mut v1 = stored.clone();
        v1.set("k1", 10);
        v1.remove("k3");
        let old_k1 = Arc::clone(v1.entry("k1").unwrap());
        let counted = Arc::strong_count(&old_k1);

        let (copy, i) = v1.clone_setting("k1", json!(11)).ok().unwrap();
        assert_eq!(
            Arc::strong_count(&old_k1),
            counted,
            "the old entry was not counted"
        );
        assert_eq!(copy.overlay_entry(i).value, json!(11));
        assert_eq!(copy.get("k1"), Some(&json!(11)));
        assert_eq!(v1.get("k1"), Some(&json!(10)), "the original is untouched");
        assert!(Arc::ptr_eq(
            copy.base.as_ref().unwrap(),
            v1.base.as_ref().unwrap()
        ));
        assert_eq!((copy.len(), copy.get("k3")), (3, None));
        let expect: SessionData = [("k0", 0), ("k1", 11), ("k2", 2)].into_iter().collect();
        assert_eq!(copy, expect);

        // A removed key of the overlay comes back, and counts again.
        let (revived, _) = v1.clone_setting("k3", json!(33)).ok().unwrap();
        assert_eq!((revived.len(), revived.get("k3")), (4, Some(&json!(33))));
        assert_eq!((v1.len(), v1.get("k3")), (3, None));

        // Keys only in the base, or nowhere, hand the value back.
        assert_eq!(v1.clone_setting("k0", json!(5)).err(), Some(json!(5)));
        assert_eq!(v1.clone_setting("zz", json!(6)).err(), Some(json!(6)));
    }

    #[test]
    fn apply_inserts_or_replaces() {
        let mut d = SessionData::new();
        let v = d
            .apply::<()>("n", |v| {
                Ok(json!(v.and_then(Value::as_i64).unwrap_or(0) + 1))
            })
            .unwrap()
            .value
            .clone();
        assert_eq!(v, json!(1));
        d.apply::<()>("n", |v| {
            Ok(json!(v.and_then(Value::as_i64).unwrap_or(0) + 1))
        })
        .unwrap();
        assert_eq!(d.get("n"), Some(&json!(2)));
        assert!(matches!(d.apply("n", |_| Err("no")), Err("no")));
        assert_eq!(
            d.get("n"),
            Some(&json!(2)),
            "a failed apply leaves the value"
        );
    }

    #[test]
    fn json_round_trip_and_refusals() {
        let d: SessionData = serde_json::from_str(r#"{"z":1,"a":{"x":[1,2]},"z":2}"#).unwrap();
        assert_eq!(d.keys().collect::<Vec<_>>(), ["a", "z"]);
        assert_eq!(d.get("z"), Some(&json!(2)));
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"a":{"x":[1,2]},"z":2}"#
        );
        assert!(serde_json::from_str::<SessionData>("[1]").is_err());
        assert!(serde_json::from_str::<SessionData>("null").is_err());
    }

    #[cfg(not(miri))]
    proptest::proptest! {
        /// Lookups agree with a `BTreeMap` on both sides of the scan/bisect threshold, with
        /// many keys of one length (so the scan's length check passes and bytes decide).
        #[test]
        fn lookups_agree_with_a_btreemap(
            ops in proptest::collection::vec(
                (0_u8..3, proptest::sample::select(vec![
                    "a", "b", "ab", "ba", "aa", "bb", "abc", "abd", "bcd", "", "é", "e", "zz", "az",
                ]), 0_i64..100),
                0..60,
            ),
        ) {
            let mut ours = SessionData::new();
            let mut model = std::collections::BTreeMap::new();
            for (op, key, n) in ops {
                match op {
                    0 => {
                        proptest::prop_assert_eq!(ours.insert(key, n), model.insert(key, json!(n)));
                    }
                    1 => proptest::prop_assert_eq!(ours.remove(key), model.remove(key)),
                    _ => proptest::prop_assert_eq!(ours.contains_key(key), model.contains_key(key)),
                }
                for probe in ["a", "b", "ab", "ba", "aa", "bb", "abc", "abd", "bcd", "", "é", "zz", "q"] {
                    proptest::prop_assert_eq!(ours.get(probe), model.get(probe));
                }
                proptest::prop_assert!(ours.keys().eq(model.keys().copied()));
            }
        }

        /// The base and overlay agree with a `BTreeMap` through every kind of write, across
        /// copies (a copy is a stored version: later writes to either side must not show in
        /// the other) and folds (when full, and before storage), with enough keys for the
        /// overlay's limit to grow past its minimum; iteration agrees from both ends and
        /// mixed.
        #[test]
        fn versions_agree_with_a_btreemap(
            ops in proptest::collection::vec((0_u8..10, 0_usize..48, 0_i64..1000), 0..300),
        ) {
            type Model = std::collections::BTreeMap<String, Value>;
            let mut ours = SessionData::new();
            let mut model = Model::new();
            let mut stored: Vec<(SessionData, Model)> = Vec::new();
            let check = |d: &SessionData, m: &Model| -> Result<(), proptest::test_runner::TestCaseError> {
                proptest::prop_assert_eq!(d.len(), m.len());
                proptest::prop_assert_eq!(d.iter().len(), m.len());
                proptest::prop_assert!(d.iter().eq(m.iter().map(|(k, v)| (k.as_str(), v))));
                proptest::prop_assert!(d.iter().rev().eq(m.iter().rev().map(|(k, v)| (k.as_str(), v))));
                // Alternating ends: the merge must hand out each key once.
                let mut it = d.iter();
                let (mut front, mut back) = (Vec::new(), Vec::new());
                while let Some(f) = it.next() {
                    front.push(f.0);
                    proptest::prop_assert_eq!(it.len(), m.len() - front.len() - back.len());
                    let Some(b) = it.next_back() else { break };
                    back.push(b.0);
                }
                front.extend(back.into_iter().rev());
                proptest::prop_assert!(front.iter().copied().eq(m.keys().map(String::as_str)));
                for (k, v) in m {
                    proptest::prop_assert_eq!(d.get(k), Some(v));
                }
                proptest::prop_assert_eq!(d.get("absent"), None);
                Ok(())
            };
            for (op, k, n) in ops {
                let key = format!("key{k}");
                match op {
                    0 | 1 => proptest::prop_assert_eq!(ours.insert(&key, n), model.insert(key, json!(n))),
                    2 => proptest::prop_assert_eq!(ours.remove(&key), model.remove(&key)),
                    3 => {
                        ours.set_entry(Arc::new(Entry { key: CompactString::from(key.as_str()), value: json!(n) }));
                        model.insert(key, json!(n));
                    }
                    4 => {
                        let got = ours
                            .apply::<()>(&key, |v| Ok(json!(v.and_then(Value::as_i64).unwrap_or(0) + n)))
                            .unwrap()
                            .value
                            .clone();
                        let m = model.entry(key).or_insert(json!(0));
                        *m = json!(m.as_i64().unwrap() + n);
                        proptest::prop_assert_eq!(&got, m);
                    }
                    5 => {
                        // Store this version; keep writing to a copy of it.
                        ours.compact_for_storage();
                        stored.push((ours.clone(), model.clone()));
                    }
                    6 => proptest::prop_assert_eq!(ours.discard(&key), model.remove(&key).is_some()),
                    7 if n % 50 == 0 => {
                        ours.clear();
                        model.clear();
                    }
                    9 => {
                        // A request's first write: a copy with the key set, the version it
                        // was made from stored unchanged.
                        ours = match ours.clone_setting(&key, json!(n)) {
                            Ok((copy, i)) => {
                                proptest::prop_assert_eq!(&copy.overlay_entry(i).value, &json!(n));
                                stored.push((std::mem::replace(&mut ours, copy), model.clone()));
                                ours
                            }
                            Err(back) => {
                                proptest::prop_assert_eq!(&back, &json!(n));
                                let mut copy = ours.clone();
                                copy.set(&key, back);
                                copy
                            }
                        };
                        model.insert(key, json!(n));
                    }
                    _ => {
                        let shared = ours.set_shared(&key, json!(n));
                        proptest::prop_assert_eq!(&shared.value, &json!(n));
                        model.insert(key, json!(n));
                    }
                }
                check(&ours, &model)?;
            }
            for (d, m) in &stored {
                check(d, m)?;
                proptest::prop_assert_eq!(&Map::from(d.clone()), &m.clone().into_iter().collect::<Map<_, _>>());
            }
        }
    }
}
