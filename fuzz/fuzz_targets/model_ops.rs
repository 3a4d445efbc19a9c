//! Random operation sequences on `ModelStore` (each strategy) against a plain `HashMap`
//! model of pk -> (version, value): every result (values, versions, error kinds, the current
//! record handed back) and, after every step, the whole store must agree with the model.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use unlocked::model::{
    CommitError, DeleteError, Model, ModelStore, SaveError, UpdateError, Versioned,
};
use unlocked::{Blocking, LockFree, Strategy};

#[derive(Clone, Debug, PartialEq)]
struct Item {
    n: i64,
}

impl Model for Item {
    const APP_LABEL: &'static str = "fuzz";
    const NAME: &'static str = "Item";
}

#[derive(Arbitrary, Clone, Debug)]
enum Op {
    Insert(i8),
    /// Reads a pk (picked among the ones handed out, or a made-up one) and keeps the record.
    Get(Pick),
    /// Edits a kept record (maybe stale) and saves it.
    Save(u8, i8),
    Update(Pick, i8),
    UpdateMany(Vec<Pick>, i8),
    /// Commits edits of several kept records at once, all or nothing.
    Commit(Vec<(u8, i8)>),
    /// Deletes a kept record at its version (maybe stale).
    Delete(u8),
    /// Deletes a pk at a made-up version.
    DeleteAt(Pick, u8),
}

#[derive(Arbitrary, Clone, Copy, Debug)]
enum Pick {
    Issued(u8),
    Made(u64),
}

#[derive(Default)]
struct State {
    /// pk -> (version, value).
    model: HashMap<u64, (u64, i64)>,
    issued: Vec<u64>,
    kept: Vec<Arc<Versioned<Item>>>,
}

impl State {
    fn pk(&self, p: Pick) -> u64 {
        match p {
            Pick::Issued(i) if !self.issued.is_empty() => {
                self.issued[usize::from(i) % self.issued.len()]
            }
            Pick::Issued(i) => u64::from(i),
            Pick::Made(pk) => pk,
        }
    }

    fn kept(&self, i: u8) -> Option<Arc<Versioned<Item>>> {
        (!self.kept.is_empty()).then(|| Arc::clone(&self.kept[usize::from(i) % self.kept.len()]))
    }

    /// The current record as the store hands it back, checked against the model.
    fn check_current(&self, pk: u64, current: Option<&Arc<Versioned<Item>>>) {
        let got = current.map(|r| (r.pk(), r.version(), r.value().n));
        let want = self.model.get(&pk).map(|&(v, n)| (pk, v, n));
        assert_eq!(got, want, "current record of {pk}");
    }
}

fn check_record(r: &Versioned<Item>, want: (u64, u64, i64)) {
    assert_eq!((r.pk(), r.version(), r.value().n), want);
}

fn run<S: Strategy>(ops: &[Op]) {
    let store: ModelStore<Item, S> = ModelStore::new();
    let mut st = State::default();
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Insert(n) => {
                let r = store.insert(Item { n: i64::from(*n) });
                assert!(!st.model.contains_key(&r.pk()), "step {i}: pk reused");
                if let Some(&last) = st.issued.last() {
                    assert!(r.pk() > last, "step {i}: pks must increase");
                }
                check_record(&r, (r.pk(), 1, i64::from(*n)));
                st.model.insert(r.pk(), (1, i64::from(*n)));
                st.issued.push(r.pk());
                st.kept.push(r);
            }
            Op::Get(p) => {
                let pk = st.pk(*p);
                let got = store.get(pk);
                st.check_current(pk, got.as_ref());
                assert_eq!(store.contains(pk), got.is_some());
                if let Some(r) = got {
                    st.kept.push(r);
                }
            }
            Op::Save(k, n) => {
                let Some(read) = st.kept(*k) else { continue };
                let pk = read.pk();
                let mut draft = read.edit();
                draft.n = i64::from(*n);
                match (store.save(draft), st.model.get(&pk).copied()) {
                    (Ok(r), Some((v, _))) if v == read.version() => {
                        check_record(&r, (pk, v + 1, i64::from(*n)));
                        st.model.insert(pk, (v + 1, i64::from(*n)));
                        st.kept.push(r);
                    }
                    (Err(SaveError::Conflict { current, .. }), Some((v, _)))
                        if v != read.version() =>
                    {
                        st.check_current(pk, Some(&current));
                    }
                    (Err(SaveError::NotFound { .. }), None) => {}
                    (got, want) => panic!(
                        "step {i}: save of {pk}@{}: {got:?}, model {want:?}",
                        read.version()
                    ),
                }
            }
            Op::Update(p, d) => {
                let pk = st.pk(*p);
                let res = store.update(pk, |m| m.n = m.n.wrapping_add(i64::from(*d)));
                match (res, st.model.get(&pk).copied()) {
                    (Ok(r), Some((v, n))) => {
                        let n = n.wrapping_add(i64::from(*d));
                        check_record(&r, (pk, v + 1, n));
                        st.model.insert(pk, (v + 1, n));
                    }
                    (Err(UpdateError::NotFound { pk: e }), None) => assert_eq!(e, pk),
                    (got, want) => panic!("step {i}: update of {pk}: {got:?}, model {want:?}"),
                }
            }
            Op::UpdateMany(picks, d) => {
                let pks: Vec<u64> = picks.iter().map(|&p| st.pk(p)).collect();
                let res = store.update_many(&pks, |ms| {
                    for m in ms {
                        m.n = m.n.wrapping_add(i64::from(*d));
                    }
                });
                let mut seen = HashSet::new();
                let dup = pks.iter().find(|&&pk| !seen.insert(pk)).copied();
                let missing: Vec<u64> = pks
                    .iter()
                    .copied()
                    .filter(|pk| !st.model.contains_key(pk))
                    .collect();
                match res {
                    Ok(rs) => {
                        assert!(dup.is_none() && missing.is_empty(), "step {i}: {pks:?}");
                        assert_eq!(rs.len(), pks.len());
                        for (r, &pk) in rs.iter().zip(&pks) {
                            let (v, n) = st.model[&pk];
                            let n = n.wrapping_add(i64::from(*d));
                            check_record(r, (pk, v + 1, n));
                            st.model.insert(pk, (v + 1, n));
                        }
                    }
                    Err(UpdateError::DuplicatePk { pk }) => assert_eq!(Some(pk), dup, "step {i}"),
                    Err(UpdateError::NotFound { pk }) => {
                        assert!(
                            dup.is_none(),
                            "step {i}: duplicate {dup:?} reported as missing"
                        );
                        assert!(missing.contains(&pk), "step {i}: {pk} is there");
                    }
                    Err(e) => panic!("step {i}: update_many {pks:?}: {e:?}"),
                }
            }
            Op::Commit(edits) => {
                let mut drafts = Vec::new();
                let mut reads = Vec::new();
                for &(k, n) in edits {
                    let Some(read) = st.kept(k) else { break };
                    let mut d = read.edit();
                    d.n = i64::from(n);
                    reads.push((read.pk(), read.version(), i64::from(n)));
                    drafts.push(d);
                }
                let mut seen = HashSet::new();
                let dup = reads.iter().map(|r| r.0).find(|&pk| !seen.insert(pk));
                let stale: Vec<u64> = reads
                    .iter()
                    .filter(|&&(pk, v, _)| st.model.get(&pk).map(|m| m.0) != Some(v))
                    .map(|r| r.0)
                    .collect();
                match store.commit(drafts) {
                    Ok(rs) => {
                        assert!(dup.is_none() && stale.is_empty(), "step {i}: {reads:?}");
                        assert_eq!(rs.len(), reads.len());
                        for (r, &(pk, v, n)) in rs.iter().zip(&reads) {
                            check_record(r, (pk, v + 1, n));
                            st.model.insert(pk, (v + 1, n));
                            st.kept.push(Arc::clone(r));
                        }
                    }
                    Err(CommitError::DuplicatePk { pk, rejected }) => {
                        assert_eq!(Some(pk), dup, "step {i}");
                        assert_eq!(rejected.len(), reads.len());
                    }
                    Err(CommitError::Conflict {
                        pk,
                        expected,
                        current,
                        rejected,
                    }) => {
                        assert!(
                            dup.is_none(),
                            "step {i}: duplicate {dup:?} reported as conflict"
                        );
                        assert!(stale.contains(&pk), "step {i}: {pk} is not stale");
                        assert!(reads.iter().any(|&(p, v, _)| p == pk && v == expected));
                        st.check_current(pk, current.as_ref());
                        assert_eq!(rejected.len(), reads.len());
                    }
                    Err(e) => panic!("step {i}: commit {reads:?}: {e:?}"),
                }
            }
            Op::Delete(k) => {
                let Some(read) = st.kept(*k) else { continue };
                delete(&store, &mut st, i, read.pk(), read.version());
            }
            Op::DeleteAt(p, v) => {
                let pk = st.pk(*p);
                delete(&store, &mut st, i, pk, u64::from(*v));
            }
        }
        // The whole store against the model.
        assert_eq!(store.len(), st.model.len(), "step {i}");
        let mut all: Vec<(u64, u64, i64)> = store
            .all()
            .iter()
            .map(|r| (r.pk(), r.version(), r.value().n))
            .collect();
        all.sort_unstable();
        let mut want: Vec<(u64, u64, i64)> =
            st.model.iter().map(|(&pk, &(v, n))| (pk, v, n)).collect();
        want.sort_unstable();
        assert_eq!(all, want, "step {i}");
        let snap = store.snapshot();
        assert_eq!(snap.len(), want.len(), "step {i}");
        for &(pk, v, n) in &want {
            check_record(snap.get(pk).expect("in the snapshot"), (pk, v, n));
        }
    }
}

fn delete<S: Strategy>(store: &ModelStore<Item, S>, st: &mut State, i: usize, pk: u64, v: u64) {
    match (store.delete(pk, v), st.model.get(&pk).copied()) {
        (Ok(r), Some((mv, n))) if mv == v => {
            check_record(&r, (pk, v, n));
            st.model.remove(&pk);
        }
        (Err(DeleteError::Conflict { current, .. }), Some((mv, _))) if mv != v => {
            st.check_current(pk, Some(&current));
        }
        (Err(DeleteError::NotFound { .. }), None) => {}
        (got, want) => panic!("step {i}: delete {pk}@{v}: {got:?}, model {want:?}"),
    }
}

fuzz_target!(|ops: Vec<Op>| {
    run::<LockFree>(&ops);
    run::<Blocking>(&ops);
});
