//! Dataset mixtures exactly as EARL's `Emu3FeatureDataset` builds its training list: per-dataset coefficients;
//! when none is given every dataset is upsampled to the size of the largest (`coef = max_size / size`); a dataset
//! with coefficient ≥ 1 contributes `int(coef)` full copies plus a random subset of `int(len · frac(coef))` items; one
//! with coefficient < 1 a random subset of `int(len · coef)`; the concatenation is then shuffled. One seed drives all
//! of it (the reference seeds Python's `random` once with `random_seed`; we use [`DataRng`], so orders differ from
//! Python's but are equally reproducible).
use super::rng::DataRng;
use crate::error::{Error, Result};

/// One entry of a mixture: (dataset index, item index within it).
pub type MixItem = (usize, usize);

/// Per-dataset coefficients after the reference's defaulting rules.
pub fn effective_coefficients(sizes: &[usize], coefficients: Option<&[f64]>) -> Result<Vec<f64>> {
    match coefficients {
        None | Some([]) => {
            let max = sizes.iter().copied().max().unwrap_or(0) as f64;
            sizes
                .iter()
                .map(|&n| {
                    if n == 0 {
                        Err(Error::input("an empty dataset cannot be upsampled"))
                    } else {
                        Ok(max / n as f64)
                    }
                })
                .collect()
        }
        Some(c) if c.len() != sizes.len() => Err(Error::input(format!(
            "{} coefficients for {} datasets (give one per dataset, or none to upsample to the largest)",
            c.len(),
            sizes.len()
        ))),
        Some(c) => {
            if let Some(bad) = c.iter().find(|x| !(x.is_finite() && **x >= 0.0)) {
                return Err(Error::input(format!("mixture coefficient {bad} must be a finite number ≥ 0")));
            }
            Ok(c.to_vec())
        }
    }
}

/// The shuffled mixture list over datasets of the given sizes, with the number of items each contributed.
pub fn build_mixture(sizes: &[usize], coefficients: Option<&[f64]>, seed: u64) -> Result<(Vec<MixItem>, Vec<usize>)> {
    let coefs = effective_coefficients(sizes, coefficients)?;
    let mut rng = DataRng::derive(seed, "mixture", 0);
    let mut list = Vec::new();
    let mut counts = Vec::with_capacity(sizes.len());
    for (d, (&n, &coef)) in sizes.iter().zip(&coefs).enumerate() {
        let items: Vec<MixItem> = (0..n).map(|i| (d, i)).collect();
        let before = list.len();
        if coef >= 1.0 {
            let whole = coef.trunc() as usize;
            for _ in 0..whole {
                list.extend_from_slice(&items);
            }
            let frac = coef - coef.trunc();
            if frac > 0.0 {
                list.extend(rng.sample(&items, (n as f64 * frac) as usize));
            }
        } else {
            list.extend(rng.sample(&items, (n as f64 * coef) as usize));
        }
        counts.push(list.len() - before);
    }
    rng.shuffle(&mut list);
    Ok((list, counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_coefficients_upsample_to_the_largest() {
        let (list, counts) = build_mixture(&[10, 4, 3], None, 42).unwrap();
        // 4 → 10/4 = 2.5: two copies + int(4·0.5) = 2; 3 → 3.33…: three copies + int(3·0.3333333333333335) =
        // int(1.0000000000000004) = 1, the same float arithmetic as the reference's Python.
        assert_eq!(counts, vec![10, 10, 10]);
        assert_eq!(list.len(), 30);
        let (_, c) = build_mixture(&[7, 3], None, 0).unwrap();
        assert_eq!(c, vec![7, 7]); // Python: 3·int(7/3) + int(3·(7/3 − 2)) = 6 + 1

        let from1: Vec<usize> = list.iter().filter(|x| x.0 == 1).map(|x| x.1).collect();
        assert!((0..4).all(|i| from1.iter().filter(|&&j| j == i).count() >= 2));
    }

    #[test]
    fn coefficients_above_and_below_one() {
        let (list, counts) = build_mixture(&[10, 10], Some(&[1.5, 0.3]), 1).unwrap();
        assert_eq!(counts, vec![15, 3]);
        let mut sub: Vec<usize> = list.iter().filter(|x| x.0 == 1).map(|x| x.1).collect();
        sub.sort();
        sub.dedup();
        assert_eq!(sub.len(), 3, "a subset is drawn without replacement");
        assert_eq!(build_mixture(&[10, 10], Some(&[1.5, 0.3]), 1).unwrap().0, list, "one seed, one order");
        assert_ne!(build_mixture(&[10, 10], Some(&[1.5, 0.3]), 2).unwrap().0, list);
        assert!(build_mixture(&[10, 10], Some(&[1.0]), 1).is_err());
        assert!(build_mixture(&[10], Some(&[-1.0]), 1).is_err());
    }
}
