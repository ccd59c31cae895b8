//! Digests: [`TraceDigest`], a 64-bit hash of every trace line's content, computed from
//! the line's values without writing the line; and [`Fnv1a`] over a file's bytes.
//!
//! A snapshot pins every reply of a run through this digest, and `--self-check` compares
//! the digests of two runs. It used to be FNV-1a over each line's JSON bytes, which made
//! a digest cost as much as writing the trace: three quarters of a debug build's
//! scenario run went to formatting JSON that nobody read. Here a line's value is fed to
//! the hash directly, through a serde [`Serializer`] that walks the same value tree
//! serde_json would print:
//!
//! - every node of the tree is marked by a tag (object, array, end, string, number,
//!   bool, null), so two different trees cannot line up into the same word sequence;
//! - a string is its length and its bytes, eight at a time; a number its 64 bits (an
//!   integer wider than that, its decimal text);
//! - the tree is JSON's: an `Option` is its value or null, a newtype is its value, an
//!   enum variant is what serde_json writes for it, a non-finite float is null, an f32
//!   is the decimal it prints as, so two traces with the same text have the same
//!   digest, and a run that changes any line's text changes its digest (barring a
//!   64-bit collision: each word goes through a full 64-bit mixer, so edits in two
//!   neighbouring words do not cancel).
//!
//! The mixing is fixed here, not borrowed from a hashing crate, because digests are
//! pinned in snapshot files and must not move with a dependency's version.

use std::fmt;

use serde::ser::{self, Serialize};

/// 64-bit FNV-1a over bytes: a file's content digest (the scenario file a sweep's
/// shards must share, the source a snapshot's sweep ran). Tiny and stable across
/// platforms and versions; not a defence against tampering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The digest as 16 hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// Tags that mark the nodes of a value tree.
mod tag {
    pub const LINE: u64 = 0x4c49_4e45;
    pub const OBJECT: u64 = 1;
    pub const ARRAY: u64 = 2;
    pub const END: u64 = 3;
    pub const STRING: u64 = 4;
    pub const UNSIGNED: u64 = 5;
    pub const NEGATIVE: u64 = 6;
    pub const FLOAT: u64 = 7;
    pub const TRUE: u64 = 8;
    pub const FALSE: u64 = 9;
    pub const NULL: u64 = 10;
    /// An integer outside the 64-bit ranges, as its decimal text.
    pub const WIDE: u64 = 11;
}

/// The running digest of a trace's lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceDigest(u64);

impl Default for TraceDigest {
    fn default() -> Self {
        TraceDigest(0x6272_6f77_6e6f_7574) // "brownout"
    }
}

impl TraceDigest {
    /// Feeds one trace line: its time and its item's value tree.
    pub fn line(&mut self, t: u64, item: &impl Serialize) -> Result<(), Unsupported> {
        self.word(tag::LINE);
        self.word(t);
        item.serialize(&mut *self)
    }

    /// The digest as 16 hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }

    /// Mixes one 64-bit word into the state: the state and the word are combined,
    /// then put through MurmurHash3's 64-bit finaliser, a bijection in which every
    /// input bit reaches every output bit. A weaker step (one multiply and one shift)
    /// let a change in one word's high bits be cancelled by a matching change in the
    /// next word: two strings differing in two bytes eight apart could digest alike.
    #[inline]
    fn word(&mut self, w: u64) {
        let mut h = self.0 ^ w;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        self.0 = h;
    }

    fn string(&mut self, s: &[u8]) {
        self.word(tag::STRING);
        self.word(s.len() as u64);
        let mut chunks = s.chunks_exact(8);
        for chunk in &mut chunks {
            self.word(u64::from_le_bytes(chunk.try_into().expect("eight bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(last));
        }
    }

    fn unsigned(&mut self, n: u64) {
        self.word(tag::UNSIGNED);
        self.word(n);
    }

    fn signed(&mut self, n: i64) {
        match u64::try_from(n) {
            Ok(n) => self.unsigned(n),
            Err(_) => {
                self.word(tag::NEGATIVE);
                self.word(n as u64);
            }
        }
    }

    fn float(&mut self, x: f64) {
        if x.is_finite() {
            self.word(tag::FLOAT);
            self.word(x.to_bits());
        } else {
            // serde_json writes a NaN or an infinity as null.
            self.word(tag::NULL);
        }
    }

    /// An integer beyond 64 bits, by its decimal text.
    fn wide(&mut self, decimal: &str) {
        self.word(tag::WIDE);
        self.string(decimal.as_bytes());
    }

    /// `{"variant": ...`: how serde_json writes a variant that carries data.
    fn open_variant(&mut self, variant: &str) {
        self.word(tag::OBJECT);
        self.string(variant.as_bytes());
    }
}

/// A value the digest cannot take, which serde_json refuses too (a map key that is not
/// a string, a number or a bool). No trace line has one.
#[derive(Debug)]
pub struct Unsupported(String);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the trace digest cannot take {}", self.0)
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Unsupported(msg.to_string())
    }
}

impl ser::Serializer for &mut TraceDigest {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> Result<(), Unsupported> {
        self.word(if v { tag::TRUE } else { tag::FALSE });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Unsupported> {
        self.signed(v.into());
        Ok(())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Unsupported> {
        self.signed(v.into());
        Ok(())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Unsupported> {
        self.signed(v.into());
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> Result<(), Unsupported> {
        self.signed(v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Unsupported> {
        self.unsigned(v.into());
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Unsupported> {
        self.unsigned(v.into());
        Ok(())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Unsupported> {
        self.unsigned(v.into());
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Unsupported> {
        self.unsigned(v);
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), Unsupported> {
        // serde_json prints an f32 as its shortest decimal (`1.1`), which is also how
        // an f64 of that decimal prints: digest the f64 of that decimal, not the f32
        // widened (1.100000023841858).
        let decimal = if v.is_finite() {
            v.to_string().parse().unwrap_or(f64::from(v))
        } else {
            f64::from(v)
        };
        self.float(decimal);
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Unsupported> {
        self.float(v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Unsupported> {
        self.string(v.encode_utf8(&mut [0; 4]).as_bytes());
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        self.string(v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Unsupported> {
        // serde_json writes bytes as an array of numbers.
        self.word(tag::ARRAY);
        for &b in v {
            self.unsigned(b.into());
        }
        self.word(tag::END);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        self.word(tag::NULL);
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        self.word(tag::NULL);
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Unsupported> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Unsupported> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        self.open_variant(variant);
        value.serialize(&mut *self)?;
        self.word(tag::END);
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self, Unsupported> {
        self.word(tag::ARRAY);
        Ok(self)
    }
    fn serialize_tuple(self, len: usize) -> Result<Self, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Self, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, Unsupported> {
        self.open_variant(variant);
        self.word(tag::ARRAY);
        Ok(self)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self, Unsupported> {
        self.word(tag::OBJECT);
        Ok(self)
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Unsupported> {
        self.word(tag::OBJECT);
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, Unsupported> {
        self.open_variant(variant);
        self.word(tag::OBJECT);
        Ok(self)
    }
    fn serialize_i128(self, v: i128) -> Result<(), Unsupported> {
        // A number digests the same whatever its Rust type, as it prints the same.
        if let Ok(n) = i64::try_from(v) {
            self.signed(n);
        } else if let Ok(n) = u64::try_from(v) {
            self.unsigned(n);
        } else {
            self.wide(itoa::Buffer::new().format(v));
        }
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), Unsupported> {
        match u64::try_from(v) {
            Ok(n) => self.unsigned(n),
            Err(_) => self.wide(itoa::Buffer::new().format(v)),
        }
        Ok(())
    }
}

impl ser::SerializeSeq for &mut TraceDigest {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Unsupported> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.word(tag::END);
        Ok(())
    }
}

impl ser::SerializeTuple for &mut TraceDigest {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Unsupported> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.word(tag::END);
        Ok(())
    }
}

impl ser::SerializeTupleStruct for &mut TraceDigest {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Unsupported> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.word(tag::END);
        Ok(())
    }
}

/// `{"variant": [...]}`: the array's end, then the object's.
impl ser::SerializeTupleVariant for &mut TraceDigest {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Unsupported> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.word(tag::END);
        self.word(tag::END);
        Ok(())
    }
}

impl ser::SerializeMap for &mut TraceDigest {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Unsupported> {
        key.serialize(MapKey(self))
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Unsupported> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.word(tag::END);
        Ok(())
    }
}

impl ser::SerializeStruct for &mut TraceDigest {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        self.string(key.as_bytes());
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.word(tag::END);
        Ok(())
    }
}

/// `{"variant": {...}}`: the inner object's end, then the outer's.
impl ser::SerializeStructVariant for &mut TraceDigest {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        self.string(key.as_bytes());
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.word(tag::END);
        self.word(tag::END);
        Ok(())
    }
}

/// A map key. serde_json writes every key as a string, numbers and bools included
/// (`{"1": ...}`, `{"1.5": ...}`), and refuses any other; so does the digest.
struct MapKey<'a>(&'a mut TraceDigest);

impl MapKey<'_> {
    fn text(self, s: &str) -> Result<(), Unsupported> {
        self.0.string(s.as_bytes());
        Ok(())
    }
    fn refuse<T>(what: &str) -> Result<T, Unsupported> {
        Err(Unsupported(format!("{what} as a map key")))
    }
    /// A finite float key is written as serde_json writes it (`"1.5"`).
    fn float(self, finite: bool, text: serde_json::Result<String>) -> Result<(), Unsupported> {
        match text {
            Ok(text) if finite => self.text(&text),
            _ => Self::refuse("a float that is not finite"),
        }
    }
}

impl ser::Serializer for MapKey<'_> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = ser::Impossible<(), Unsupported>;
    type SerializeTuple = ser::Impossible<(), Unsupported>;
    type SerializeTupleStruct = ser::Impossible<(), Unsupported>;
    type SerializeTupleVariant = ser::Impossible<(), Unsupported>;
    type SerializeMap = ser::Impossible<(), Unsupported>;
    type SerializeStruct = ser::Impossible<(), Unsupported>;
    type SerializeStructVariant = ser::Impossible<(), Unsupported>;

    fn serialize_bool(self, v: bool) -> Result<(), Unsupported> {
        self.text(if v { "true" } else { "false" })
    }
    fn serialize_i8(self, v: i8) -> Result<(), Unsupported> {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Unsupported> {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Unsupported> {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<(), Unsupported> {
        self.text(itoa::Buffer::new().format(v))
    }
    fn serialize_u8(self, v: u8) -> Result<(), Unsupported> {
        self.serialize_u64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Unsupported> {
        self.serialize_u64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Unsupported> {
        self.serialize_u64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Unsupported> {
        self.text(itoa::Buffer::new().format(v))
    }
    fn serialize_f32(self, v: f32) -> Result<(), Unsupported> {
        self.float(v.is_finite(), serde_json::to_string(&v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Unsupported> {
        self.float(v.is_finite(), serde_json::to_string(&v))
    }
    fn serialize_i128(self, v: i128) -> Result<(), Unsupported> {
        self.text(itoa::Buffer::new().format(v))
    }
    fn serialize_u128(self, v: u128) -> Result<(), Unsupported> {
        self.text(itoa::Buffer::new().format(v))
    }
    fn serialize_char(self, v: char) -> Result<(), Unsupported> {
        self.text(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        self.text(v)
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<(), Unsupported> {
        Self::refuse("bytes")
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        Self::refuse("null")
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        Self::refuse("null")
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Unsupported> {
        Self::refuse("null")
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Unsupported> {
        self.text(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Unsupported> {
        Self::refuse("an enum variant with data")
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Unsupported> {
        Self::refuse("an array")
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Unsupported> {
        Self::refuse("an array")
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Unsupported> {
        Self::refuse("an array")
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        Self::refuse("an enum variant with data")
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Unsupported> {
        Self::refuse("an object")
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Unsupported> {
        Self::refuse("an object")
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Unsupported> {
        Self::refuse("an enum variant with data")
    }
}

#[cfg(test)]
mod tests;
