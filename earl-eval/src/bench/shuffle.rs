//! The reference's row selection, bit-exact: Hugging Face `Dataset.shuffle(seed=42)` draws its index mapping with
//! `np.random.default_rng(seed).permutation(len(dataset))`, and the evaluation scripts keep the first 1000
//! (`.select(range(1000))`, mair-lab/EARL `baselines/our_eval_on_{emuedit,i2ebench}.py`). This module reimplements
//! the three numpy pieces that produce that permutation (numpy 2.x, checked against numpy 2.4 by
//! `fixtures/gen_bench.py`'s goldens):
//! - `SeedSequence(seed).generate_state(4, uint64)`: the entropy hashed into a pool of four 32-bit words, then
//!   expanded into the 128-bit PCG64 state and increment;
//! - `PCG64`: a 128-bit LCG with the XSL-RR output, its 32-bit draws taken as the low then the high half of one
//!   64-bit output (numpy's buffered `next_uint32`);
//! - `Generator.permutation(n)` = `shuffle(arange(n))`: Fisher–Yates from the last element down, each index drawn
//!   by `random_interval` (masked rejection sampling on 32-bit draws when the bound fits in 32 bits, 64-bit ones
//!   otherwise — not Lemire's method, which numpy uses for `integers` but not for `shuffle`).

/// Which rows of a dataset a benchmark evaluates, in evaluation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Every row, in dataset order.
    All,
    /// The first `count` indices of `Dataset.shuffle(seed)` (all of the shuffle when the dataset is smaller).
    ShuffleFirst {
        /// The shuffle's seed (42 in the reference).
        seed: u64,
        /// How many of the shuffled indices are kept (1000 in the reference).
        count: usize,
    },
}

impl Selection {
    /// The selected dataset row indices for a dataset of `n` rows.
    pub fn indices(&self, n: usize) -> Vec<usize> {
        match *self {
            Selection::All => (0..n).collect(),
            Selection::ShuffleFirst { seed, count } => {
                let mut p = permutation(n, seed);
                p.truncate(count);
                p
            }
        }
    }

    /// The rule as a run manifest records it.
    pub fn describe(&self) -> serde_json::Value {
        match *self {
            Selection::All => serde_json::json!({"rule": "all"}),
            Selection::ShuffleFirst { seed, count } => serde_json::json!({
                "rule": "hf_shuffle_first",
                "seed": seed,
                "count": count,
                "method": "np.random.default_rng(seed).permutation(n)[:count]",
            }),
        }
    }
}

/// `np.random.default_rng(seed).permutation(n)`.
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = Pcg64::from_seed(seed);
    let mut v: Vec<usize> = (0..n).collect();
    // numpy `_shuffle_raw`: for i in reversed(range(1, n)): j = random_interval(i); swap(i, j).
    for i in (1..n).rev() {
        let j = rng.interval(i as u64) as usize;
        v.swap(i, j);
    }
    v
}

const M32: u32 = u32::MAX;

/// numpy's `SeedSequence(seed).generate_state(n_words, np.uint64)` for an integer seed and no spawn key.
pub fn seed_sequence_state(seed: u64, n_words: usize) -> Vec<u64> {
    // `_coerce_to_uint32_array`: the integer as little-endian 32-bit words, `[0]` for zero.
    let entropy: Vec<u32> = if seed >> 32 == 0 { vec![seed as u32] } else { vec![seed as u32, (seed >> 32) as u32] };
    let pool = mix_entropy(&entropy);
    // `generate_state`: cycle over the pool, hashing each word with a running constant.
    let mut hash_const: u32 = 0x8b51_f9dd;
    let words: Vec<u32> = (0..2 * n_words)
        .map(|i| {
            let mut v = pool[i % pool.len()] ^ hash_const;
            hash_const = hash_const.wrapping_mul(0x58f3_8ded);
            v = v.wrapping_mul(hash_const);
            v ^ (v >> 16)
        })
        .collect();
    // `.view(np.uint64)` on a little-endian machine: word pairs (low, high).
    words.chunks(2).map(|w| u64::from(w[0]) | (u64::from(w[1]) << 32)).collect()
}

/// `SeedSequence.mix_entropy` with the default pool size of 4.
fn mix_entropy(entropy: &[u32]) -> [u32; 4] {
    let mut hash_const: u32 = 0x43b0_d7e5;
    let mut hashmix = |value: u32| {
        let mut v = value ^ hash_const;
        hash_const = hash_const.wrapping_mul(0x931e_8875);
        v = v.wrapping_mul(hash_const);
        v ^ (v >> 16)
    };
    let mix = |x: u32, y: u32| {
        let r = 0xca01_f9dd_u32.wrapping_mul(x).wrapping_sub(0x4973_f715_u32.wrapping_mul(y));
        r ^ (r >> 16)
    };
    let mut pool = [0u32; 4];
    for (i, p) in pool.iter_mut().enumerate() {
        *p = hashmix(entropy.get(i).copied().unwrap_or(0));
    }
    for src in 0..4 {
        for dst in 0..4 {
            if src != dst {
                let h = hashmix(pool[src]);
                pool[dst] = mix(pool[dst], h);
            }
        }
    }
    for &e in entropy.iter().skip(4) {
        for p in pool.iter_mut() {
            let h = hashmix(e);
            *p = mix(*p, h);
        }
    }
    pool
}

const PCG_MULT: u128 = 0x2360_ED05_1FC6_5DA4_4385_DF64_9FCC_F645;

/// numpy's `PCG64` bit generator (pcg64.h, the 128-bit "setseq" variant with XSL-RR output).
#[derive(Debug, Clone)]
pub struct Pcg64 {
    state: u128,
    inc: u128,
    /// The high half of the last 64-bit output, not yet handed out by [`Pcg64::next_u32`].
    buffered: Option<u32>,
}

impl Pcg64 {
    /// `np.random.PCG64(seed)`, as `default_rng(seed)` builds it.
    pub fn from_seed(seed: u64) -> Self {
        let w = seed_sequence_state(seed, 4);
        // `pcg64_set_seed(seed = val[0:2], inc = val[2:4])`, each pair read as (high, low).
        let init_state = (u128::from(w[0]) << 64) | u128::from(w[1]);
        let init_seq = (u128::from(w[2]) << 64) | u128::from(w[3]);
        // `pcg_setseq_128_srandom_r`.
        let mut rng = Pcg64 { state: 0, inc: (init_seq << 1) | 1, buffered: None };
        rng.step();
        rng.state = rng.state.wrapping_add(init_state);
        rng.step();
        rng
    }

    /// The raw 128-bit (state, increment), for comparison with `bit_generator.state`.
    pub fn state(&self) -> (u128, u128) {
        (self.state, self.inc)
    }

    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
    }

    /// `pcg64_next64`: step, then the XSL-RR output of the new state.
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let xored = ((self.state >> 64) as u64) ^ (self.state as u64);
        xored.rotate_right((self.state >> 122) as u32)
    }

    /// `pcg64_next32`: the low half of a fresh 64-bit output, then its high half on the next call.
    pub fn next_u32(&mut self) -> u32 {
        if let Some(v) = self.buffered.take() {
            return v;
        }
        let v = self.next_u64();
        self.buffered = Some((v >> 32) as u32);
        (v & u64::from(M32)) as u32
    }

    /// numpy `random_interval(max)`: uniform in `[0, max]` by rejection of draws masked to the smallest all-ones
    /// bit mask covering `max`.
    pub fn interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mask = u64::MAX >> max.leading_zeros();
        if max <= u64::from(M32) {
            loop {
                let v = u64::from(self.next_u32()) & mask;
                if v <= max {
                    return v;
                }
            }
        }
        loop {
            let v = self.next_u64() & mask;
            if v <= max {
                return v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_after_seeding_matches_numpy() {
        // `np.random.default_rng(42).bit_generator.state['state']` (numpy 2.4).
        let (state, inc) = Pcg64::from_seed(42).state();
        assert_eq!(state, 274674114334540486603088602300644985544);
        assert_eq!(inc, 332724090758049132448979897138935081983);
    }

    #[test]
    fn small_permutations() {
        assert_eq!(permutation(0, 42), Vec::<usize>::new());
        assert_eq!(permutation(1, 42), vec![0]);
        let p = permutation(1000, 42);
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn selection_keeps_all_of_a_short_shuffle() {
        let s = Selection::ShuffleFirst { seed: 42, count: 1000 };
        assert_eq!(s.indices(7), permutation(7, 42));
        assert_eq!(s.indices(1001).len(), 1000);
        assert_eq!(Selection::All.indices(3), vec![0, 1, 2]);
    }
}
