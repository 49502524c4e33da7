//! CRC-64/XZ (ECMA-182 polynomial, reflected), which COS reports as `x-cos-hash-crc64ecma`.

use crc::{Crc, Digest, CRC_64_XZ};

static CRC64: Crc<u64> = Crc::<u64>::new(&CRC_64_XZ);

/// CRC of a whole buffer.
pub fn checksum(data: &[u8]) -> u64 {
    CRC64.checksum(data)
}

/// An incremental CRC for streamed bodies.
pub struct Crc64 {
    digest: Digest<'static, u64>,
}

impl Default for Crc64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc64 {
    pub fn new() -> Self {
        Crc64 {
            digest: CRC64.digest(),
        }
    }
    pub fn update(&mut self, data: &[u8]) {
        self.digest.update(data);
    }
    pub fn finish(self) -> u64 {
        self.digest.finalize()
    }
}

/// Combine CRC(A) and CRC(B) into CRC(A||B) knowing only len(B) (zlib's crc64 combine, for
/// the whole-object CRC of a multipart upload from its parts' CRCs).
pub fn combine(crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
    if len_b == 0 {
        return crc_a;
    }
    // Reflected ECMA-182 polynomial.
    const POLY: u64 = 0xC96C_5795_D787_0F42;
    fn gf2_times(mat: &[u64; 64], mut vec: u64) -> u64 {
        let mut sum = 0u64;
        let mut i = 0;
        while vec != 0 {
            if vec & 1 != 0 {
                sum ^= mat[i];
            }
            vec >>= 1;
            i += 1;
        }
        sum
    }
    fn gf2_square(square: &mut [u64; 64], mat: &[u64; 64]) {
        for n in 0..64 {
            square[n] = gf2_times(mat, mat[n]);
        }
    }
    let mut even = [0u64; 64];
    let mut odd = [0u64; 64];
    odd[0] = POLY;
    let mut row = 1u64;
    for item in odd.iter_mut().skip(1) {
        *item = row;
        row <<= 1;
    }
    gf2_square(&mut even, &odd);
    gf2_square(&mut odd, &even);
    let mut crc1 = crc_a;
    let mut len2 = len_b;
    loop {
        gf2_square(&mut even, &odd);
        if len2 & 1 != 0 {
            crc1 = gf2_times(&even, crc1);
        }
        len2 >>= 1;
        if len2 == 0 {
            break;
        }
        gf2_square(&mut odd, &even);
        if len2 & 1 != 0 {
            crc1 = gf2_times(&odd, crc1);
        }
        len2 >>= 1;
        if len2 == 0 {
            break;
        }
    }
    crc1 ^ crc_b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        assert_eq!(checksum(b"123456789"), 11051210869376104954);
        assert_eq!(checksum(b""), 0);
    }

    #[test]
    fn combine_matches_whole() {
        let a = b"hello ";
        let b = b"world, and more bytes";
        let whole = [a.as_slice(), b.as_slice()].concat();
        assert_eq!(
            combine(checksum(a), checksum(b), b.len() as u64),
            checksum(&whole)
        );
        let mut inc = Crc64::new();
        inc.update(a);
        inc.update(b);
        assert_eq!(inc.finish(), checksum(&whole));
    }
}
