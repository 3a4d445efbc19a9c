//! [`SessionData`]: a session's values, shared entry by entry between versions.

use std::fmt;
use std::sync::Arc;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

/// Up to this many keys, a lookup scans instead of bisecting (see [`SessionData::find`]).
const LINEAR_FIND_MAX: usize = 8;

/// One key and its value. Immutable once built: versions of a session (and the change log
/// of a request, which replays it on a merge) share it by `Arc`.
pub(crate) struct Entry {
    pub(crate) key: Arc<str>,
    pub(crate) value: Value,
}

impl Entry {
    /// The value out of a shared entry: moved if this was the last reference, else cloned.
    pub(crate) fn into_value(entry: Arc<Entry>) -> Value {
        Arc::try_unwrap(entry).map_or_else(|shared| shared.value.clone(), |e| e.value)
    }
}

/// A session's data: JSON values under string keys (Django's JSON serializer), in key order.
///
/// Every stored version of a session is immutable, so a save builds the next version from the
/// last one. To keep that cheap, entries are shared between versions: copying a session's data
/// copies one pointer per key (and bumps its reference count), never a key or a value, and a
/// change allocates only the entry it changes. Lookups scan a session of up to 8 keys (lengths
/// first, then bytes) and bisect the sorted keys of a larger one. Iteration is in key order (byte order of the keys), as a `serde_json::Map` without
/// `preserve_order` iterates.
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
#[derive(Clone, Default)]
pub struct SessionData {
    /// Sorted by key, keys unique.
    entries: Vec<Arc<Entry>>,
}

impl SessionData {
    /// Empty data.
    pub const fn new() -> Self {
        SessionData {
            entries: Vec::new(),
        }
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[inline]
    fn find(&self, key: &str) -> Result<usize, usize> {
        if self.entries.len() <= LINEAR_FIND_MAX {
            // A typical session holds a handful of keys: a scan that compares lengths first
            // skips most entries without a byte comparison, where a binary search calls
            // `memcmp` at every probe (callgrind: 57 of a load's 495 instructions were three
            // such calls for one `get`). Absent keys fall through for the insertion point.
            let bytes = key.as_bytes();
            if let Some(i) = self
                .entries
                .iter()
                .position(|e| e.key.len() == bytes.len() && e.key.as_bytes() == bytes)
            {
                return Ok(i);
            }
        }
        self.entries.binary_search_by(|e| (*e.key).cmp(key))
    }

    /// The value under `key`.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.find(key).ok().map(|i| &self.entries[i].value)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + '_ {
        self.entries.iter().map(|e| &*e.key)
    }

    /// The values, in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Value> + ExactSizeIterator + '_ {
        self.entries.iter().map(|e| &e.value)
    }

    /// The keys and values, in key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            inner: self.entries.iter(),
        }
    }

    /// Sets `key` to `value`; returns the previous value.
    ///
    /// The previous value is cloned out if another version of the session still shares it;
    /// [`set`](Self::set) does not return it and never clones.
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl Into<Value>) -> Option<Value> {
        let old = self.replace(key.as_ref(), value.into())?;
        Some(Entry::into_value(old))
    }

    /// Sets `key` to `value`, dropping the previous value.
    pub fn set(&mut self, key: impl AsRef<str>, value: impl Into<Value>) {
        drop(self.replace(key.as_ref(), value.into()));
    }

    /// Sets `key` to `value`; returns the replaced entry. Reuses the key's allocation when the
    /// key is present.
    fn replace(&mut self, key: &str, value: Value) -> Option<Arc<Entry>> {
        match self.find(key) {
            Ok(i) => {
                let key = Arc::clone(&self.entries[i].key);
                Some(std::mem::replace(
                    &mut self.entries[i],
                    Arc::new(Entry { key, value }),
                ))
            }
            Err(i) => {
                let key = Arc::from(key);
                self.entries.insert(i, Arc::new(Entry { key, value }));
                None
            }
        }
    }

    /// Sets `key` to `value`; returns the key's index (for [`key_at`](Self::key_at) and
    /// [`value_at`](Self::value_at)).
    pub(crate) fn set_index(&mut self, key: &str, value: Value) -> usize {
        match self.find(key) {
            Ok(i) => {
                let key = Arc::clone(&self.entries[i].key);
                self.entries[i] = Arc::new(Entry { key, value });
                i
            }
            Err(i) => {
                let key = Arc::from(key);
                self.entries.insert(i, Arc::new(Entry { key, value }));
                i
            }
        }
    }

    /// The key at index `i` (from [`set_index`](Self::set_index)).
    pub(crate) fn key_at(&self, i: usize) -> &Arc<str> {
        &self.entries[i].key
    }

    /// The value at index `i` (from [`set_index`](Self::set_index)).
    pub(crate) fn value_at(&self, i: usize) -> &Value {
        &self.entries[i].value
    }

    /// Sets `key` to `value` and returns the shared entry (for a change log).
    pub(crate) fn set_shared(&mut self, key: &str, value: Value) -> Arc<Entry> {
        let i = self.set_index(key, value);
        Arc::clone(&self.entries[i])
    }

    /// Puts `entry` in, replacing the entry of its key.
    pub(crate) fn set_entry(&mut self, entry: Arc<Entry>) {
        match self.find(&entry.key) {
            Ok(i) => self.entries[i] = entry,
            Err(i) => self.entries.insert(i, entry),
        }
    }

    /// Sets `key` to `f(current value)`; returns the new entry. Used by update operations.
    pub(crate) fn apply<E>(
        &mut self,
        key: &str,
        f: impl FnOnce(Option<&Value>) -> Result<Value, E>,
    ) -> Result<&Entry, E> {
        let i = match self.find(key) {
            Ok(i) => {
                let value = f(Some(&self.entries[i].value))?;
                let key = Arc::clone(&self.entries[i].key);
                self.entries[i] = Arc::new(Entry { key, value });
                i
            }
            Err(i) => {
                let value = f(None)?;
                self.entries.insert(
                    i,
                    Arc::new(Entry {
                        key: Arc::from(key),
                        value,
                    }),
                );
                i
            }
        };
        Ok(&self.entries[i])
    }

    /// Removes `key`; returns its value (cloned out if another version still shares it).
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.find(key).ok()?;
        Some(Entry::into_value(self.entries.remove(i)))
    }

    /// Removes `key` and returns its entry.
    pub(crate) fn take_entry(&mut self, key: &str) -> Option<Arc<Entry>> {
        let i = self.find(key).ok()?;
        Some(self.entries.remove(i))
    }

    /// Removes `key`, dropping its value; `true` if it was present.
    pub(crate) fn discard(&mut self, key: &str) -> bool {
        match self.find(key) {
            Ok(i) => {
                self.entries.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// A `serde_json::Map` with the same keys and values (copies them).
    pub fn to_map(&self) -> Map<String, Value> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect()
    }
}

/// Iterator over a [`SessionData`]'s keys and values, in key order.
#[derive(Clone)]
pub struct Iter<'a> {
    inner: std::slice::Iter<'a, Arc<Entry>>,
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
        self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .zip(&other.entries)
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
        let mut data = SessionData::new();
        data.extend(iter);
        data
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
        let mut entries: Vec<Arc<Entry>> = map
            .into_iter()
            .map(|(k, value)| {
                Arc::new(Entry {
                    key: Arc::from(k),
                    value,
                })
            })
            .collect();
        // A `Map` is sorted already unless serde_json's `preserve_order` is on somewhere in
        // the build; its keys are unique either way.
        if !entries.is_sorted_by(|a, b| a.key < b.key) {
            entries.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        }
        SessionData { entries }
    }
}

impl From<SessionData> for Map<String, Value> {
    fn from(data: SessionData) -> Self {
        data.entries
            .into_iter()
            .map(|e| match Arc::try_unwrap(e) {
                Ok(e) => (String::from(&*e.key), e.value),
                Err(shared) => (String::from(&*shared.key), shared.value.clone()),
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
                let mut data = SessionData::new();
                // A repeated key: the last one wins, as in `serde_json::Map`.
                while let Some((k, v)) = access.next_entry::<String, Value>()? {
                    data.set(k, v);
                }
                Ok(data)
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
            Arc::ptr_eq(&a.entries[0], &b.entries[0]),
            "a copy shares its entries"
        );
        assert_eq!(
            a.insert("a", 10),
            Some(json!(1)),
            "cloned out of a shared entry"
        );
        assert!(!Arc::ptr_eq(&a.entries[0], &b.entries[0]));
        assert_eq!(b.get("a"), Some(&json!(1)), "the copy is untouched");
        assert_eq!(a.remove("b"), Some(json!(3)));
        assert_eq!(a.remove("b"), None);
        assert!(!a.discard("zz"));
        let map: Map<String, Value> = a.clone().into();
        assert_eq!(SessionData::from(map), a);
        assert_eq!(a, json!({"a": 10}).as_object().unwrap().clone());
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
    }
}
