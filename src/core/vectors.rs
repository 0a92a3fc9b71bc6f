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

/// The cosine similarity of `query` with each `dim`-wide row of `matrix` (row-major), keeping the
/// rows scoring at least `min_score`: at most `k` of them as `(row, score)`, best first (ties: the
/// earlier row first). A row (or a query) of zero length scores 0. `None` when the shapes disagree
/// (`query.len() != dim`, or `matrix` is not a whole number of rows).
pub fn top_k_cosine(
    query: &[f32],
    matrix: &[f32],
    dim: usize,
    k: usize,
    min_score: f32,
) -> Option<Vec<(usize, f32)>> {
    if dim == 0 || query.len() != dim || !matrix.len().is_multiple_of(dim) {
        return None;
    }
    let qnorm = query.iter().map(|x| x * x).sum::<f32>().sqrt();
    let mut scored: Vec<(usize, f32)> = matrix
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, row)| {
            let (mut dot, mut norm) = (0.0f32, 0.0f32);
            for (a, b) in row.iter().zip(query) {
                dot += a * b;
                norm += a * a;
            }
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

    #[test]
    fn best_first_limited_to_k_and_thresholded() {
        let matrix = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, -1.0, 0.0];
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
        let matrix = [3.0, 0.0, 0.5, 0.0, 0.0, 0.0];
        let got = top_k_cosine(&[2.0, 0.0], &matrix, 2, 3, -1.0).unwrap();
        assert_eq!(got, vec![(0, 1.0), (1, 1.0), (2, 0.0)]);
    }

    #[test]
    fn bad_shapes_are_none() {
        assert!(top_k_cosine(&[1.0], &[1.0, 2.0], 2, 1, 0.0).is_none());
        assert!(top_k_cosine(&[1.0, 0.0], &[1.0, 2.0, 3.0], 2, 1, 0.0).is_none());
        assert!(top_k_cosine(&[], &[], 0, 1, 0.0).is_none());
        assert_eq!(top_k_cosine(&[1.0, 0.0], &[], 2, 1, 0.0), Some(vec![]));
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
