//! A tiny seeded PRNG (SplitMix64) and the distributions the traffic model
//! draws from.
//!
//! Hand-written rather than `rand` + `rand_chacha` because the simulator needs
//! only a handful of draws, must give the same numbers on every platform and
//! crate version forever (a trace generated today must be regenerated
//! byte-identically next year). The step is the workspace's one SplitMix64,
//! [`cache_core::hash::splitmix64`].

/// SplitMix64 (Steele, Lea, Flood 2014): 64-bit state, passes BigCrush, and
/// every seed (including 0) gives a good stream.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// An independent stream derived from this seed and a label, so adding a
    /// draw in one part of the model does not shift every other part.
    pub fn derive(seed: u64, label: u64) -> Self {
        let mut r = Rng::new(seed ^ label.wrapping_mul(0xA24B_AED4_963E_E407));
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        cache_core::hash::splitmix64(&mut self.state)
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`0` when `n == 0`). Lemire's multiply-shift; the
    /// tiny bias is irrelevant for traffic modelling.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform index into a slice of length `len`.
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Exponentially distributed with the given mean (inter-arrival times of
    /// a Poisson process).
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f64()).ln()
    }

    /// Laplace-distributed around 0 with scale `b` (most items near "today",
    /// a long tail into past and future).
    pub fn laplace(&mut self, b: f64) -> f64 {
        let e = self.exp(b);
        if self.chance(0.5) {
            e
        } else {
            -e
        }
    }
}

/// A Zipf distribution over `0..n` with exponent `s`: rank 0 is the most
/// likely. Sampling is a binary search over a precomputed CDF.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// Zipf over `n >= 1` ranks with exponent `s` (1.0 is classic Zipf).
    pub fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n.max(1));
        let mut total = 0.0;
        for k in 1..=n.max(1) {
            total += 1.0 / (k as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf }
    }

    /// The weight of rank `k` (probability mass), for rate scaling.
    pub fn weight(&self, k: usize) -> f64 {
        let hi = self.cdf.get(k).copied().unwrap_or(0.0);
        let lo = if k == 0 {
            0.0
        } else {
            self.cdf.get(k - 1).copied().unwrap_or(0.0)
        };
        hi - lo
    }

    /// A rank in `0..n`.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.f64();
        self.cdf.partition_point(|&c| c <= u).min(self.cdf.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_zipf_favours_rank_zero() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let z = Zipf::new(100, 1.0);
        let mut r = Rng::new(1);
        let mut counts = [0u32; 100];
        for _ in 0..10_000 {
            counts[z.sample(&mut r)] += 1;
        }
        assert!(counts[0] > counts[10] && counts[10] > counts[99]);
        assert!(r.below(10) < 10);
    }
}
