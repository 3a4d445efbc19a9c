//! Arbitrary bytes through the session codec and `SessionStore::import`, for each strategy:
//! a typed error or session data, never a panic; what decodes re-encodes to the same data;
//! an import stores exactly what `decode` returns, and a refused import stores nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unlocked::session::{DecodeError, ImportError, SessionCodec, SessionStore};
use unlocked::{Blocking, LockFree, Strategy};

fn import<S: Strategy>(
    max_len: usize,
    bytes: &[u8],
    decoded: &Result<unlocked::session::SessionData, DecodeError>,
) {
    let store: SessionStore<S> = SessionStore::builder().max_encoded_len(max_len).build();
    match (store.import(bytes), decoded) {
        (Ok(session), Ok(data)) => {
            assert_eq!(store.len(), 1);
            let key = session
                .session_key()
                .expect("an imported session has a key");
            let record = store.record(key.as_str()).expect("the import is stored");
            assert_eq!(record.data(), data);
        }
        (Err(ImportError::Decode(e)), Err(want)) => {
            assert_eq!(e.to_string(), want.to_string());
            assert_eq!(store.len(), 0, "a refused import stored something");
        }
        (Ok(_), Err(e)) => panic!("import accepted what decode refused: {e}"),
        (Err(e), _) => panic!("import refused what decode accepted, or not as decode did: {e}"),
    }
}

fuzz_target!(|input: &[u8]| {
    // The first byte picks a limit (small ones exercise `TooLarge`), the rest is the input.
    let (limit, bytes) = match input.split_first() {
        Some((&l, rest)) if l < 32 => (usize::from(l) * 8, rest),
        _ => (unlocked::session::DEFAULT_MAX_ENCODED_LEN, input),
    };
    let codec = SessionCodec::new().with_max_len(limit);
    let decoded = codec.decode(bytes);
    match &decoded {
        Ok(data) => {
            // What decodes re-encodes (within the default limit) and decodes to the same data.
            let again = SessionCodec::new().encode(data).expect("re-encode");
            assert_eq!(
                &SessionCodec::new().decode(&again).expect("re-decode"),
                data
            );
        }
        Err(DecodeError::TooLarge { len, limit: l }) => {
            assert_eq!((*len, *l), (bytes.len(), limit));
            assert!(bytes.len() > limit);
        }
        Err(_) => assert!(bytes.len() <= limit),
    }
    // Django's behaviour: corrupt input is an empty session.
    let lenient = codec.decode_or_empty(bytes);
    if decoded.is_err() {
        assert!(lenient.is_empty());
    }
    import::<LockFree>(limit, bytes, &decoded);
    import::<Blocking>(limit, bytes, &decoded);
});
