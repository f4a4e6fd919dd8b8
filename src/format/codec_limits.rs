//! Bounds on what one decode may do, whatever the bytes say: how deep values nest
//! ([`MAX_DEPTH`]) and how many elements of sequences and maps it reads in all (the
//! payload's length and [`EXTRA_ELEMENTS`] more).
//!
//! A length prefix must not make bincode allocate what the payload does not hold: bincode
//! allocates an owned string or byte buffer of the length claimed before it reads it (9
//! bytes claiming 2^60 made the allocator abort the process). So [`Limited`] asks the
//! format for a *borrowed* `str` or byte slice instead, which bincode takes from the
//! payload only if it is there, and hands the visitor an owned copy, as it asked. (bincode's
//! own byte limit is no bound for it: it counts each integer at its full width and each
//! length prefix as 8 bytes, so a limit near the payload's length refused values that
//! decode, and one far above it let a prefix claim that much.)
//!
//! Nor must a decode run for ever or recurse past the stack: a 9-byte payload claiming 2^60
//! elements of a zero-sized type (`Vec<()>`) kept a thread busy for ever, and 10,000 bytes
//! of a recursive type (`struct Deep(Option<Box<Deep>>)`) overflowed the stack, which
//! aborts the process. [`Limited`] wraps the seed of the value (bincode's
//! `seed_decode_from_slice`), so that the deserializer bincode hands it, and every one it
//! hands the parts of that value, is wrapped too: each call is forwarded, counting each
//! element and each level on the way, and refused past either bound with a serde error.
//! It changes no byte and no value within the bounds.

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use std::cell::Cell;
use std::fmt;

/// Deepest nesting decoded (a sequence, map, enum, `Some` or newtype struct each count one
/// level; `serde_json` allows 128). Measured on a 2 MiB thread (a runtime worker's): 1,000
/// levels of `struct Deep(Option<Box<Deep>>)` (2,000 here) decoded in a debug build and
/// 2,000 overflowed; in a release build 2,000 decoded and 8,000 overflowed.
pub const MAX_DEPTH: u32 = 256;
/// Elements decoded in all beyond one per byte of payload (every element but a zero-sized
/// one takes at least a byte): room for a value holding zero-sized elements.
pub const EXTRA_ELEMENTS: u64 = 1 << 20;

/// What one decode may still do.
pub struct Budget {
    elements_left: Cell<u64>,
    depth: Cell<u32>,
}

impl Budget {
    /// The budget of a decode of `payload_bytes` bytes.
    pub fn for_payload(payload_bytes: usize) -> Budget {
        Budget {
            elements_left: Cell::new(payload_bytes as u64 + EXTRA_ELEMENTS),
            depth: Cell::new(0),
        }
    }

    fn take_element<E: de::Error>(&self) -> Result<(), E> {
        match self.elements_left.get().checked_sub(1) {
            Some(left) => {
                self.elements_left.set(left);
                Ok(())
            }
            None => Err(E::custom(
                "more elements than the payload can hold (zero-sized elements past the bound)",
            )),
        }
    }

    /// Runs `f` one level deeper, or refuses past [`MAX_DEPTH`].
    fn deeper<T, E: de::Error>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let depth = self.depth.get() + 1;
        if depth > MAX_DEPTH {
            return Err(E::custom(format!(
                "values nested more than {MAX_DEPTH} deep"
            )));
        }
        self.depth.set(depth);
        let out = f();
        self.depth.set(depth - 1);
        out
    }
}

/// A visitor that asked for an owned string or byte buffer, handed the borrowed one the
/// format lends (`visit_borrowed_str`, `visit_borrowed_bytes`) as an owned copy: the
/// copy is made once the bytes are known to be in the payload.
struct Owned<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for Owned<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.0.visit_string(v.to_owned())
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        self.0.visit_byte_buf(v.to_vec())
    }
}

/// A deserializer, visitor, access or seed, wrapped to spend `budget`.
pub struct Limited<'b, T> {
    /// What is wrapped.
    pub inner: T,
    /// What it may still do.
    pub budget: &'b Budget,
}

impl<'b, T> Limited<'b, T> {
    fn wrap<U>(&self, inner: U) -> Limited<'b, U> {
        Limited {
            inner,
            budget: self.budget,
        }
    }
}

/// Forwards `deserialize_*` methods that take only a visitor.
macro_rules! forward_deserialize {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            let visitor = self.wrap(visitor);
            self.inner.$method(visitor)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Limited<'_, D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_bytes deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier deserialize_ignored_any
    }

    /// Asked of the format as a borrowed `str`, which bincode checks is in the payload
    /// before a byte is copied; the visitor gets it owned, as it asked.
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let visitor = Owned(self.wrap(visitor));
        self.inner.deserialize_str(visitor)
    }

    /// As [`Self::deserialize_string`], for a byte buffer.
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let visitor = Owned(self.wrap(visitor));
        self.inner.deserialize_bytes(visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = self.wrap(visitor);
        self.inner.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = self.wrap(visitor);
        self.inner.deserialize_newtype_struct(name, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = self.wrap(visitor);
        self.inner.deserialize_tuple(len, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = self.wrap(visitor);
        self.inner.deserialize_tuple_struct(name, len, visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = self.wrap(visitor);
        self.inner.deserialize_struct(name, fields, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = self.wrap(visitor);
        self.inner.deserialize_enum(name, variants, visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// Forwards `visit_*` methods of one plain value.
macro_rules! forward_visit {
    ($($method:ident($ty:ty))*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Limited<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit! {
        visit_bool(bool) visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64)
        visit_i128(i128) visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64)
        visit_u128(u128) visit_f32(f32) visit_f64(f64) visit_char(char) visit_str(&str)
        visit_borrowed_str(&'de str) visit_string(String) visit_bytes(&[u8])
        visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let d = self.wrap(d);
        self.budget.deeper(|| self.inner.visit_some(d))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let d = self.wrap(d);
        self.budget.deeper(|| self.inner.visit_newtype_struct(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let seq = self.wrap(seq);
        self.budget.deeper(|| self.inner.visit_seq(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let map = self.wrap(map);
        self.budget.deeper(|| self.inner.visit_map(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        let data = self.wrap(data);
        self.budget.deeper(|| self.inner.visit_enum(data))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Limited<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let d = self.wrap(d);
        self.inner.deserialize(d)
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Limited<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.budget.take_element()?;
        let seed = self.wrap(seed);
        self.inner.next_element_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Limited<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        self.budget.take_element()?;
        let seed = self.wrap(seed);
        self.inner.next_key_seed(seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let seed = self.wrap(seed);
        self.inner.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, 'b, A: EnumAccess<'de>> EnumAccess<'de> for Limited<'b, A> {
    type Error = A::Error;
    type Variant = Limited<'b, A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Self::Error> {
        let seed = self.wrap(seed);
        let budget = self.budget;
        let (value, variant) = self.inner.variant_seed(seed)?;
        Ok((
            value,
            Limited {
                inner: variant,
                budget,
            },
        ))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Limited<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        let seed = self.wrap(seed);
        self.inner.newtype_variant_seed(seed)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = self.wrap(visitor);
        self.inner.tuple_variant(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = self.wrap(visitor);
        self.inner.struct_variant(fields, visitor)
    }
}
