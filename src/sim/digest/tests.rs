use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};

use super::*;

fn digest(t: u64, item: &impl Serialize) -> String {
    let mut d = TraceDigest::default();
    d.line(t, item).unwrap();
    d.hex()
}

#[test]
fn fnv1a_known_value() {
    let mut d = Fnv1a::default();
    d.update(b"a");
    assert_eq!(d.hex(), "af63dc4c8601ec8c");
}

/// Digests are pinned in snapshot files: this one moves only if the mixing or the
/// encoding does, and then every snapshot's digest line moves with it.
#[test]
fn a_known_line_keeps_its_digest() {
    let line = json!({"type": "reply", "id": 7, "latency": 1250,
                      "served": {"served": "stale", "age": 71052156},
                      "body": {"type": "user_response", "user": {"id": 9496, "name": "User 9496"},
                               "from_cache": true, "recommendations": [], "score": -0.5}});
    assert_eq!(digest(166_329_982, &line), "3d22a275d5229f24");
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    Reply {
        id: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        age: Option<u64>,
        served: Served,
        note: Note,
        ids: (u8, i32),
    },
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Served {
    Fresh,
}

#[derive(Serialize)]
enum Note {
    Hint(&'static str),
    Pair(u8, u8),
    Named { x: f64 },
}

#[derive(Serialize)]
struct Wrapper(Value);

/// A typed line and the `serde_json::Value` of its JSON text digest alike: the digest
/// follows the tree serde_json prints, not the Rust types behind it.
#[test]
fn the_digest_follows_the_json_tree_not_the_rust_types() {
    let typed = |age, note| Line::Reply {
        id: 3,
        age,
        served: Served::Fresh,
        note,
        ids: (1, -2),
    };
    for (age, note) in [
        (Some(9), Note::Hint("hi")),
        (None, Note::Pair(4, 5)),
        (Some(0), Note::Named { x: 1.5 }),
    ] {
        let line = typed(age, note);
        let text = serde_json::to_string(&line).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        // Key order is the typed line's: serde_json's `Value` would sort the keys.
        assert_eq!(digest(1, &line), digest(1, &RawOrdered(&text)), "{text}");
        assert_eq!(
            digest(1, &Wrapper(value.clone())),
            digest(1, &value),
            "{text}"
        );
    }
    // An optional field written as null is null; NaN and infinities are written null.
    assert_eq!(digest(1, &Option::<u8>::None), digest(1, &Value::Null));
    assert_eq!(digest(1, &f64::NAN), digest(1, &Value::Null));
    assert_eq!(digest(1, &f64::INFINITY), digest(1, &()));
    // Map keys are strings in JSON, numbers included.
    let numbered: BTreeMap<u32, bool> = [(1, true), (20, false)].into();
    assert_eq!(
        digest(1, &numbered),
        digest(1, &json!({"1": true, "20": false}))
    );
}

/// Re-reads a JSON text with its keys in the order written, as a digestible value.
struct RawOrdered<'a>(&'a str);

impl Serialize for RawOrdered<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // `Value` (serde_json's default features) sorts object keys; this keeps them
        // as written.
        ordered(self.0).serialize(s)
    }
}

/// An ordered JSON tree: objects keep their keys in the order of the text.
enum Ordered {
    Leaf(Value),
    Array(Vec<Ordered>),
    Object(Vec<(String, Ordered)>),
}

impl Serialize for Ordered {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Ordered::Leaf(v) => v.serialize(s),
            Ordered::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Ordered::Object(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// Parses `text` keeping object keys in order (enough JSON for these tests: no
/// escapes in strings).
fn ordered(text: &str) -> Ordered {
    fn value(s: &mut &str) -> Ordered {
        *s = s.trim_start();
        match s.as_bytes()[0] {
            b'{' => {
                *s = &s[1..];
                let mut entries = Vec::new();
                loop {
                    *s = s.trim_start_matches(',').trim_start();
                    if let Some(rest) = s.strip_prefix('}') {
                        *s = rest;
                        return Ordered::Object(entries);
                    }
                    let Ordered::Leaf(Value::String(key)) = value(s) else {
                        panic!("a key")
                    };
                    *s = s.trim_start().strip_prefix(':').expect("a colon");
                    entries.push((key, value(s)));
                }
            }
            b'[' => {
                *s = &s[1..];
                let mut items = Vec::new();
                loop {
                    *s = s.trim_start_matches(',').trim_start();
                    if let Some(rest) = s.strip_prefix(']') {
                        *s = rest;
                        return Ordered::Array(items);
                    }
                    items.push(value(s));
                }
            }
            _ => {
                let mut stream = serde_json::Deserializer::from_str(s).into_iter::<Value>();
                let leaf = stream.next().expect("a value").expect("valid JSON");
                *s = &s[stream.byte_offset()..];
                Ordered::Leaf(leaf)
            }
        }
    }
    let mut s = text;
    value(&mut s)
}

/// Near misses: each pair differs in one place, in a way a careless encoding would
/// miss (a boundary moved, a type changed, a value moved between keys).
#[test]
fn near_misses_digest_apart() {
    let pairs = [
        (json!(["ab", "c"]), json!(["a", "bc"])),
        (json!(["abcdefgh"]), json!(["abcdefgh\u{0}"])),
        (json!([""]), json!([])),
        (json!([[1], 2]), json!([1, [2]])),
        (json!({"a": 1, "b": 2}), json!({"a": 2, "b": 1})),
        (json!({"a": {"b": 1}}), json!({"a": {}, "b": 1})),
        (json!(["1"]), json!([1])),
        (json!([true]), json!([1])),
        (json!([null]), json!([0])),
        (json!([1]), json!([1.0])),
        (json!([-1]), json!([u64::MAX])),
        (json!([0.0]), json!([-0.0])),
        (json!({"x": []}), json!({"x": {}})),
    ];
    for (a, b) in pairs {
        assert_ne!(digest(1, &a), digest(1, &b), "{a} and {b}");
    }
    assert_ne!(
        digest(1, &json!({})),
        digest(2, &json!({})),
        "the time counts"
    );
    let mut one = TraceDigest::default();
    one.line(1, &json!([1, 2])).unwrap();
    let mut two = TraceDigest::default();
    two.line(1, &json!([1])).unwrap();
    two.line(1, &json!([2])).unwrap();
    assert_ne!(one, two, "line boundaries count");
}

/// Two edits in neighbouring eight-byte words of a string: the first mixing step let
/// the second cancel the first (these two names digested alike at t = 1, and so did
/// half of such pairs at other times).
#[test]
fn edits_in_neighbouring_words_do_not_cancel() {
    for t in 0..2_000 {
        let a = json!({"type": "x", "name": "aaaaaaaaaaaaaaaa"});
        let b = json!({"type": "x", "name": "aaaaaaa!aaaacaa!"});
        assert_ne!(digest(t, &a), digest(t, &b), "t = {t}");
    }
    // Every two-byte edit of a 24-byte string, one byte in each of two neighbouring
    // words: no two of the 24 * 8 * 8 variants (and the original) digest alike.
    let base = b"abcdefghijklmnopqrstuvwx";
    let mut seen = std::collections::BTreeMap::new();
    for word in 0..2 {
        for i in 0..8 {
            for j in 0..8 {
                for flip in [1u8, 0x20, 0x40] {
                    let mut s = *base;
                    s[word * 8 + i] ^= flip;
                    s[word * 8 + 8 + j] ^= flip;
                    let text = String::from_utf8(s.to_vec()).unwrap();
                    let d = digest(1, &text);
                    if let Some(other) = seen.insert(d.clone(), text.clone()) {
                        assert_eq!(other, text, "{other} and {text} digest alike: {d}");
                    }
                }
            }
        }
    }
}

/// Numbers digest as they print: an f32 as the decimal it prints as, a 128-bit integer
/// in the 64-bit range as that integer, wider ones by their digits; float, bool and
/// 128-bit map keys as serde_json writes them.
#[test]
fn numbers_digest_as_serde_json_prints_them() {
    assert_eq!(serde_json::to_string(&1.1f32).unwrap(), "1.1");
    assert_eq!(digest(1, &1.1f32), digest(1, &1.1f64));
    assert_ne!(digest(1, &1.1f32), digest(1, &f64::from(1.1f32)));
    assert_eq!(digest(1, &(u64::MAX as i128)), digest(1, &u64::MAX));
    assert_eq!(digest(1, &-5i128), digest(1, &-5i64));
    assert_eq!(digest(1, &7u128), digest(1, &7u8));
    assert_ne!(digest(1, &(u128::MAX)), digest(1, &(u128::MAX - 1)));
    assert_ne!(digest(1, &(i128::MIN)), digest(1, &(i128::MIN + 1)));
    let floats: BTreeMap<String, u8> = [("1.5".to_owned(), 1)].into();
    let mut keyed = serde_json::Map::new();
    keyed.insert("1.5".into(), json!(1));
    assert_eq!(digest(1, &floats), digest(1, &Value::Object(keyed)));
    struct FloatKey;
    impl Serialize for FloatKey {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = s.serialize_map(Some(2))?;
            map.serialize_entry(&1.5f64, &1u8)?;
            map.serialize_entry(&u128::MAX, &true)?;
            map.end()
        }
    }
    assert_eq!(
        serde_json::to_string(&FloatKey).unwrap(),
        r#"{"1.5":1,"340282366920938463463374607431768211455":true}"#
    );
    assert_eq!(
        digest(1, &FloatKey),
        digest(
            1,
            &json!({"1.5": 1, "340282366920938463463374607431768211455": true})
        )
    );
}

#[test]
fn keys_that_are_not_strings_or_numbers_are_refused() {
    let mut d = TraceDigest::default();
    let map: BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
    let err = d.line(1, &map).unwrap_err();
    assert!(err.to_string().contains("map key"), "{err}");
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (0u64..3).prop_map(Value::from),
        (-2i64..0).prop_map(Value::from),
        prop_oneof![Just(0.5f64), Just(-0.0), Just(1.0)].prop_map(Value::from),
        "[ab]{0,9}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[ab]{0,2}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// Two values digest alike exactly when serde_json writes them alike. The small
    /// alphabets make equal texts common enough to test both directions.
    #[test]
    fn digests_agree_exactly_when_json_texts_agree(
        values in proptest::collection::vec(json_value(), 2..8),
    ) {
        for a in &values {
            for b in &values {
                let same_text = serde_json::to_string(a).unwrap() == serde_json::to_string(b).unwrap();
                prop_assert_eq!(digest(9, a) == digest(9, b), same_text, "{} and {}", a, b);
            }
        }
    }
}
