//! Brute-force nearest neighbours for a vector store search: the `k` rows of a contiguous f32
//! matrix most similar (cosine) to a query. Pure and allocation-light: the host hands the rows'
//! embeddings as one little-endian float32 buffer, as its store keeps them.

/// Decode little-endian float32 bytes (a trailing partial value is ignored).
pub fn f32_from_le_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Lanes of the dot product: independent sums the compiler can keep in one vector register.
const LANES: usize = 8;

/// `(row . query, row . row)` for a row of little-endian float32 bytes (`row.len() == 4 * query.len()`).
fn dot_and_norm(row: &[u8], query: &[f32]) -> (f32, f32) {
    let mut dot = [0.0f32; LANES];
    let mut norm = [0.0f32; LANES];
    let mut rows = row.chunks_exact(4 * LANES);
    let mut queries = query.chunks_exact(LANES);
    for (r, q) in rows.by_ref().zip(queries.by_ref()) {
        for lane in 0..LANES {
            let b = &r[4 * lane..4 * lane + 4];
            let a = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            dot[lane] += a * q[lane];
            norm[lane] += a * a;
        }
    }
    let (mut d, mut n) = (dot.iter().sum::<f32>(), norm.iter().sum::<f32>());
    for (b, q) in rows.remainder().chunks_exact(4).zip(queries.remainder()) {
        let a = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        d += a * q;
        n += a * a;
    }
    (d, n)
}

/// The cosine similarity of `query` with each `dim`-wide row of `matrix` (row-major, little-endian
/// float32 bytes, as the host's store keeps them: read in place, not copied), keeping the rows
/// scoring at least `min_score`: at most `k` of them as `(row, score)`, best first (ties: the
/// earlier row first). A row (or a query) of zero length scores 0. `None` when the shapes disagree
/// (`query.len() != dim`, or `matrix` is not a whole number of rows).
pub fn top_k_cosine(
    query: &[f32],
    matrix: &[u8],
    dim: usize,
    k: usize,
    min_score: f32,
) -> Option<Vec<(usize, f32)>> {
    if dim == 0 || query.len() != dim || !matrix.len().is_multiple_of(4 * dim) {
        return None;
    }
    let qnorm = query.iter().map(|x| x * x).sum::<f32>().sqrt();
    let mut scored: Vec<(usize, f32)> = matrix
        .chunks_exact(4 * dim)
        .enumerate()
        .map(|(i, row)| {
            let (dot, norm) = dot_and_norm(row, query);
            let denom = norm.sqrt() * qnorm;
            (i, if denom > 0.0 { dot / denom } else { 0.0 })
        })
        .filter(|(_, s)| *s >= min_score)
        .collect();
    let by_score = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if k < scored.len() {
        scored.select_nth_unstable_by(k, by_score);
        scored.truncate(k);
    }
    scored.sort_by(by_score);
    Some(scored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn best_first_limited_to_k_and_thresholded() {
        let matrix = le(&[1.0, 0.0, 0.0, 1.0, 1.0, 1.0, -1.0, 0.0]);
        let got = top_k_cosine(&[1.0, 0.0], &matrix, 2, 2, -2.0).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (0, 1.0));
        assert_eq!(got[1].0, 2);
        assert!((got[1].1 - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        let all = top_k_cosine(&[1.0, 0.0], &matrix, 2, 10, -2.0).unwrap();
        assert_eq!(all.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 2, 1, 3]);
        let above = top_k_cosine(&[1.0, 0.0], &matrix, 2, 10, 0.5).unwrap();
        assert_eq!(above.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 2]);
    }

    #[test]
    fn scale_does_not_matter_and_ties_keep_row_order() {
        let matrix = le(&[3.0, 0.0, 0.5, 0.0, 0.0, 0.0]);
        let got = top_k_cosine(&[2.0, 0.0], &matrix, 2, 3, -1.0).unwrap();
        assert_eq!(got, vec![(0, 1.0), (1, 1.0), (2, 0.0)]);
    }

    #[test]
    fn bad_shapes_are_none() {
        assert!(top_k_cosine(&[1.0], &le(&[1.0, 2.0]), 2, 1, 0.0).is_none());
        assert!(top_k_cosine(&[1.0, 0.0], &le(&[1.0, 2.0, 3.0]), 2, 1, 0.0).is_none());
        assert!(top_k_cosine(&[1.0, 0.0], &[0u8; 9], 2, 1, 0.0).is_none());
        assert!(top_k_cosine(&[], &[], 0, 1, 0.0).is_none());
        assert_eq!(top_k_cosine(&[1.0, 0.0], &[], 2, 1, 0.0), Some(vec![]));
    }

    #[test]
    fn long_rows_match_a_plain_sum() {
        // 19 values: two whole lanes of 8 and a remainder of 3.
        let query: Vec<f32> = (0..19).map(|i| (i as f32 * 0.37).sin()).collect();
        let rows: Vec<f32> = (0..57).map(|i| (i as f32 * 0.11).cos()).collect();
        let got = top_k_cosine(&query, &le(&rows), 19, 3, -2.0).unwrap();
        for (row, score) in got {
            let r = &rows[row * 19..row * 19 + 19];
            let dot: f32 = r.iter().zip(&query).map(|(a, b)| a * b).sum();
            let norms = r.iter().map(|a| a * a).sum::<f32>().sqrt()
                * query.iter().map(|a| a * a).sum::<f32>().sqrt();
            assert!(
                (score - dot / norms).abs() < 1e-5,
                "{score} vs {}",
                dot / norms
            );
        }
    }

    #[test]
    fn le_bytes_round_trip() {
        let bytes: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(f32_from_le_bytes(&bytes), vec![1.5, -2.0]);
    }
}
