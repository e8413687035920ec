//! Fixed maps from the model's dimension `n` to the length a Bedrock model id returns.
//!
//! Longer (`d > n`): `y = M_d · [x, 0…0]`, with `M_d` the orthonormal DCT-II matrix of size
//! `d`. `M_d` is orthogonal, so every dot product, norm and cosine similarity of the model's
//! vectors is preserved exactly; the extra dimensions carry no new information.
//! Shorter (`d < n`): the first `d` coefficients of `M_n · x`, i.e. the orthogonal projection
//! onto a fixed `d`-dimensional subspace. Similarities are then those of the projected vectors:
//! an approximation (for 256 of 384, two thirds of the dimensions are kept), not the original.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// DCT matrices by (size, rows, columns).
type DctCache = Mutex<HashMap<(usize, usize, usize), Arc<Vec<f32>>>>;

/// Rows `0..rows` and columns `0..cols` of the orthonormal DCT-II matrix of size `size`,
/// row-major, cached per shape.
fn dct(size: usize, rows: usize, cols: usize) -> Arc<Vec<f32>> {
    static CACHE: OnceLock<DctCache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .entry((size, rows, cols))
        .or_insert_with(|| {
            let n = size as f64;
            let mut m = Vec::with_capacity(rows * cols);
            for k in 0..rows {
                let scale = if k == 0 {
                    (1.0 / n).sqrt()
                } else {
                    (2.0 / n).sqrt()
                };
                for i in 0..cols {
                    let angle = std::f64::consts::PI * (i as f64 + 0.5) * k as f64 / n;
                    m.push((scale * angle.cos()) as f32);
                }
            }
            Arc::new(m)
        })
        .clone()
}

/// `v` mapped to `dims` dimensions (see the module docs for what that preserves).
pub fn resize(v: &[f32], dims: usize) -> Vec<f32> {
    let n = v.len();
    if dims == n {
        return v.to_vec();
    }
    let (size, rows) = if dims > n { (dims, dims) } else { (n, dims) };
    let m = dct(size, rows, n);
    (0..rows)
        .map(|k| {
            let row = &m[k * n..(k + 1) * n];
            row.iter()
                .zip(v)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum::<f64>() as f32
        })
        .collect()
}

/// `v` scaled to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if norm > 0.0 {
        for x in v {
            *x = (f64::from(*x) / norm) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum()
    }

    fn vector(seed: u32) -> Vec<f32> {
        (0..384)
            .map(|i| (((i * 7 + seed * 13) % 17) as f32 - 8.0) / 10.0)
            .collect()
    }

    #[test]
    fn growing_preserves_every_dot_product() {
        let (a, b) = (vector(1), vector(2));
        for dims in [512, 1024, 1536] {
            let (ra, rb) = (resize(&a, dims), resize(&b, dims));
            assert_eq!(ra.len(), dims);
            assert!((dot(&ra, &rb) - dot(&a, &b)).abs() < 1e-3, "{dims}");
            assert!((dot(&ra, &ra) - dot(&a, &a)).abs() < 1e-3, "{dims}");
        }
    }

    #[test]
    fn shrinking_is_an_orthogonal_projection() {
        let a = vector(3);
        let r = resize(&a, 256);
        assert_eq!(r.len(), 256);
        // A projection never lengthens a vector.
        assert!(dot(&r, &r) <= dot(&a, &a) + 1e-6);
        // And applied to a vector already in the subspace it is the identity: the full DCT
        // of size 384 is orthogonal, so resizing to 384 keeps the length.
        assert!((dot(&resize(&a, 384), &a) - dot(&a, &a)).abs() < 1e-9);
    }

    #[test]
    fn normalizes() {
        let mut v = vec![3.0, 4.0];
        normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut z = vec![0.0; 3];
        normalize(&mut z);
        assert_eq!(z, vec![0.0; 3]);
    }
}
