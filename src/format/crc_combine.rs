//! CRC-32 arithmetic (zlib's `crc32_combine`): the CRC of a byte range from CRCs of prefixes.
//!
//! The frame CRC is the standard IEEE CRC-32 (`crc32fast`). It is linear over GF(2), so
//! appending bytes to a message acts on its CRC as a multiplication modulo the CRC polynomial:
//!
//! ```text
//! crc(A || B)    = shift(crc(A), |B|) ^ crc(B)        shift(c, n) = c · x^(8n) mod P
//! crc(A || 0^n)  = !shift(!crc(A), n)
//! ```
//!
//! With `S(i)` the CRC of a segment's bytes up to `i`, the CRC of bytes `a..b` is
//! `S(b) ^ shift(S(a), b - a)`: the torn-tail search (`log/tail.rs`) checks a candidate frame
//! with one shift instead of hashing its payload. Polynomials are stored reflected, as CRC-32
//! stores them: bit 31 is the coefficient of `x^0`.

/// The CRC-32 polynomial, reflected.
const POLY: u32 = 0xEDB8_8320;
/// The polynomial `1`, reflected.
const ONE: u32 = 0x8000_0000;

/// `a · b mod P`, one bit at a time (zlib's `multmodp`); used to build the tables at compile
/// time and, in tests, to check [`mul`].
const fn mul_bitwise(a: u32, mut b: u32) -> u32 {
    let mut p = 0u32;
    let mut i = 0;
    while i < 32 {
        p ^= b & ((a >> (31 - i)) & 1).wrapping_neg();
        b = (b >> 1) ^ ((b & 1).wrapping_neg() & POLY);
        i += 1;
    }
    p
}

/// Slicing-by-4 tables: `REDUCE[k][v]` is `(v at byte k of a 32-bit value) · x^32 mod P`
/// (reflected), so a 32-bit value times `x^32` reduces with four independent lookups.
/// `REDUCE[0]` is the byte-at-a-time CRC table.
const REDUCE: [[u32; 256]; 4] = {
    let mut t = [[0u32; 256]; 4];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = (c >> 1) ^ ((c & 1).wrapping_neg() & POLY);
            k += 1;
        }
        t[0][n] = c;
        n += 1;
    }
    let mut k = 1;
    while k < 4 {
        let mut n = 0;
        while n < 256 {
            let prev = t[k - 1][n];
            t[k][n] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            n += 1;
        }
        k += 1;
    }
    t
};

/// `X8N[k][d]` is `x^(8 · d · 256^k) mod P`: four tables, one per byte of a length, so that
/// `x^(8n)` for any 32-bit `n` is the product of at most four entries.
static X8N: [[u32; 256]; 4] = {
    let mut t = [[0u32; 256]; 4];
    let mut step = 0x0080_0000; // x^8, reflected
    let mut k = 0;
    while k < 4 {
        t[k][0] = ONE;
        let mut d = 1;
        while d < 256 {
            t[k][d] = mul_bitwise(t[k][d - 1], step);
            d += 1;
        }
        step = mul_bitwise(t[k][255], step); // step^256: the next byte of the length
        k += 1;
    }
    t
};

/// Carry-less product of two 32-bit values (63 bits), with ordinary integer multiplies on
/// bits four apart, so that the carries of a column never reach the next column of the same
/// group (BearSSL's `bmul32`). No SIMD, no unsafe.
fn clmul32(x: u32, y: u32) -> u64 {
    const M: [u64; 4] = [0x1111_1111, 0x2222_2222, 0x4444_4444, 0x8888_8888];
    let (x, y) = (u64::from(x), u64::from(y));
    let (x0, x1, x2, x3) = (x & M[0], x & M[1], x & M[2], x & M[3]);
    let (y0, y1, y2, y3) = (y & M[0], y & M[1], y & M[2], y & M[3]);
    let z0 = (x0 * y0) ^ (x1 * y3) ^ (x2 * y2) ^ (x3 * y1);
    let z1 = (x0 * y1) ^ (x1 * y0) ^ (x2 * y3) ^ (x3 * y2);
    let z2 = (x0 * y2) ^ (x1 * y1) ^ (x2 * y0) ^ (x3 * y3);
    let z3 = (x0 * y3) ^ (x1 * y2) ^ (x2 * y1) ^ (x3 * y0);
    const N: u64 = 0x1111_1111_1111_1111;
    (z0 & N) | (z1 & (N << 1)) | (z2 & (N << 2)) | (z3 & (N << 3))
}

/// `a · b mod P`, reflected: one carry-less product and four table steps of reduction.
pub(crate) fn mul(a: u32, b: u32) -> u32 {
    // Reflected operands: bit i is x^(31 - i), so product bit m is x^(62 - m); shifted left
    // once, the high half is x^0..x^31 and the low half x^32..x^63, which four zero-byte
    // steps of the CRC table reduce (each multiplies by x^8 mod P).
    let p = clmul32(a, b) << 1;
    let high = p as u32;
    (p >> 32) as u32
        ^ REDUCE[3][(high & 0xFF) as usize]
        ^ REDUCE[2][((high >> 8) & 0xFF) as usize]
        ^ REDUCE[1][((high >> 16) & 0xFF) as usize]
        ^ REDUCE[0][(high >> 24) as usize]
}

/// `crc` (the CRC of a message) extended by `bytes`: a byte at a time for up to 3 bytes,
/// `crc32fast` for more (its setup costs about as much as 4 bytes done one at a time).
pub(crate) fn update(crc: u32, bytes: &[u8]) -> u32 {
    if bytes.len() > 3 {
        let mut h = crc32fast::Hasher::new_with_initial(crc);
        h.update(bytes);
        return h.finalize();
    }
    let mut c = !crc;
    for &b in bytes {
        c = REDUCE[0][((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// `x^(8 n) mod P`, reflected: multiplying a CRC by it appends `n` zero bytes' worth of
/// shift (at most three multiplications).
pub(crate) fn x8n(n: u32) -> u32 {
    let mut p = ONE;
    for (k, table) in X8N.iter().enumerate() {
        let d = (n >> (8 * k)) & 0xFF;
        if d != 0 {
            p = if p == ONE {
                table[d as usize]
            } else {
                mul(p, table[d as usize])
            };
        }
    }
    p
}

/// `shift(crc, n)`: what `crc` becomes as the prefix of a message `n` bytes longer, before
/// the CRC of those bytes is added: `crc(A || B) = shift(crc(A), |B|) ^ crc(B)`.
pub(crate) fn shift(crc: u32, n: u32) -> u32 {
    mul(x8n(n), crc)
}

/// The CRC of a message followed by `n` zero bytes, from the message's CRC.
pub(crate) fn extend_zeros(crc: u32, n: u32) -> u32 {
    !shift(!crc, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(s: &mut u64) -> u32 {
        *s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*s >> 32) as u32
    }

    #[test]
    fn mul_matches_the_bitwise_product() {
        let mut s = 7;
        for _ in 0..20_000 {
            let (a, b) = (lcg(&mut s), lcg(&mut s));
            assert_eq!(mul(a, b), mul_bitwise(a, b), "{a:#x} * {b:#x}");
        }
        assert_eq!(mul(ONE, 0x1234_5678), 0x1234_5678);
        assert_eq!(mul(0, 0x1234_5678), 0);
    }

    #[test]
    fn update_matches_crc32fast() {
        let mut s = 5;
        let data: Vec<u8> = (0..300).map(|_| lcg(&mut s) as u8).collect();
        for split in [0, 1, 2, 23, 63, 64, 65, 200, 300] {
            let (a, b) = data.split_at(split);
            assert_eq!(
                update(crc32fast::hash(a), b),
                crc32fast::hash(&data),
                "split {split}"
            );
        }
    }

    #[test]
    fn combine_and_zero_extension_match_crc32fast() {
        let mut s = 11;
        let data: Vec<u8> = (0..70_000).map(|_| lcg(&mut s) as u8).collect();
        for &(a, b) in &[(0, 0), (0, 1), (3, 3), (5, 90), (17, 65_553), (1, 70_000)] {
            let (sa, sb) = (crc32fast::hash(&data[..a]), crc32fast::hash(&data[..b]));
            let range = crc32fast::hash(&data[a..b]);
            assert_eq!(sb ^ shift(sa, (b - a) as u32), range, "range {a}..{b}");
        }
        for n in [0usize, 1, 255, 256, 65_536, 70_000] {
            let zeros = vec![0u8; n];
            let mut h = crc32fast::Hasher::new();
            h.update(&data[..100]);
            h.update(&zeros);
            assert_eq!(
                extend_zeros(crc32fast::hash(&data[..100]), n as u32),
                h.finalize()
            );
        }
    }

    #[test]
    fn x8n_composes_by_bytes() {
        let mut s = 3;
        for _ in 0..200 {
            let (m, n) = (lcg(&mut s) >> 2, lcg(&mut s) >> 2);
            assert_eq!(mul(x8n(m), x8n(n)), x8n(m + n));
        }
        assert_eq!(x8n(0), ONE);
        assert_eq!(x8n(1), 0x0080_0000);
    }
}
