//! Integer encodings of unit vectors, as Cohere Embed and Titan v2 return them.

/// A vector's integer encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantization {
    /// Each value scaled by 127 and rounded, in -128..=127.
    Int8,
    /// `Int8` shifted by 128, in 0..=255.
    Uint8,
    /// Sign bits packed eight to a byte (most significant first), as signed bytes.
    Binary,
    /// Sign bits packed eight to a byte, as unsigned bytes.
    Ubinary,
    /// One sign bit per dimension, 0 or 1 (Titan v2's `binary`).
    Bits,
}

/// `v` (a unit vector) in the given encoding.
pub fn quantize(v: &[f32], kind: Quantization) -> Vec<i32> {
    let int8 = |x: &f32| (x * 127.0).round().clamp(-128.0, 127.0) as i32;
    let packed = |offset: i32| {
        v.chunks(8)
            .map(|c| {
                c.iter()
                    .fold(0i32, |acc, x| (acc << 1) | i32::from(*x > 0.0))
                    - offset
            })
            .collect()
    };
    match kind {
        Quantization::Int8 => v.iter().map(int8).collect(),
        Quantization::Uint8 => v.iter().map(|x| int8(x) + 128).collect(),
        Quantization::Binary => packed(128),
        Quantization::Ubinary => packed(0),
        Quantization::Bits => v.iter().map(|x| i32::from(*x > 0.0)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(
            quantize(&[1.0, -1.0, 0.0], Quantization::Int8),
            [127, -127, 0]
        );
        assert_eq!(
            quantize(&[1.0, -1.0, 0.0], Quantization::Uint8),
            [255, 1, 128]
        );
        let v = [0.5, -0.5, 0.5, -0.5, 0.5, -0.5, 0.5, -0.5];
        assert_eq!(quantize(&v, Quantization::Ubinary), [0b1010_1010]);
        assert_eq!(quantize(&v, Quantization::Binary), [0b1010_1010 - 128]);
        assert_eq!(quantize(&[0.3, -0.2], Quantization::Bits), [1, 0]);
    }
}
