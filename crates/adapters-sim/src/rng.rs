//! The crate's seeded random source: SplitMix64, with uniform, normal (Box-Muller),
//! log-normal, exponential (inversion) and Poisson draws. No global state: every draw
//! comes from a generator the caller seeded, so a run replays exactly.

/// SplitMix64: a tiny, fast generator with good statistical quality for simulation (it
/// passes BigCrush), and a convenient way to derive independent streams from keys.
#[derive(Debug, Clone)]
pub struct SimRng {
    state: u64,
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// One SplitMix64 output step: a bijective mix of 64 bits.
#[must_use]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SimRng {
    /// A generator seeded with `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator for one (seed, stream, key) triple: used to make draws that depend
    /// only on, say, the 100 ms bucket of a send, not on how many draws came before.
    #[must_use]
    pub fn keyed(seed: u64, stream: u64, key: u64) -> Self {
        let a = mix64(seed.wrapping_add(GOLDEN));
        let b = mix64(a ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        Self::new(mix64(b ^ key.wrapping_mul(0xABC9_8388_FB8A_C921)))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix64(self.state)
    }

    /// A uniform draw in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        kyzlo_domain::unit_interval(self.next_u64())
    }

    /// A uniform draw in `(0, 1]`: safe under a logarithm.
    pub fn uniform_open(&mut self) -> f64 {
        1.0 - self.uniform()
    }

    /// A standard normal draw (Box-Muller; the second variate is discarded so a draw
    /// always consumes exactly two words, which keeps keyed streams simple).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform_open();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A log-normal draw with the given median and log-space standard deviation.
    pub fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// An exponential draw with the given mean (inversion).
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.uniform_open().ln()
    }

    /// A Poisson draw with mean `lambda` (Knuth's product method: fine for the small
    /// per-step means the generator uses; `lambda` is capped at 30 to bound the loop).
    pub fn poisson(&mut self, lambda: f64) -> u32 {
        if lambda.is_nan() || lambda <= 0.0 {
            return 0;
        }
        let limit = (-lambda.min(30.0)).exp();
        let mut product = self.uniform_open();
        let mut k = 0;
        while product > limit && k < 1_000 {
            k += 1;
            product *= self.uniform_open();
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    #[test]
    fn same_seed_replays_and_other_seeds_and_keys_differ() {
        let a: Vec<u64> = {
            let mut r = SimRng::new(1);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = SimRng::new(1);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut r = SimRng::new(2);
            (0..8).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(
            SimRng::keyed(1, 0, 5).next_u64(),
            SimRng::keyed(1, 0, 6).next_u64()
        );
        assert_ne!(
            SimRng::keyed(1, 0, 5).next_u64(),
            SimRng::keyed(1, 1, 5).next_u64()
        );
        assert_eq!(
            SimRng::keyed(9, 2, 5).next_u64(),
            SimRng::keyed(9, 2, 5).next_u64()
        );
    }

    #[test]
    fn draws_have_their_documented_moments() {
        let mut r = SimRng::new(42);
        let n = 200_000;
        let u: Vec<f64> = (0..n).map(|_| r.uniform()).collect();
        let (m, s) = moments(&u);
        assert!((m - 0.5).abs() < 0.005 && (s - (1.0f64 / 12.0).sqrt()).abs() < 0.005);
        assert!(u.iter().all(|x| (0.0..1.0).contains(x)));

        let z: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let (m, s) = moments(&z);
        assert!(m.abs() < 0.01 && (s - 1.0).abs() < 0.01, "{m} {s}");

        let e: Vec<f64> = (0..n).map(|_| r.exponential(2.0)).collect();
        let (m, _) = moments(&e);
        assert!((m - 2.0).abs() < 0.03, "{m}");

        let mut l: Vec<f64> = (0..n).map(|_| r.lognormal(600.0, 0.5)).collect();
        l.sort_by(f64::total_cmp);
        let median = l[n / 2];
        assert!((median / 600.0 - 1.0).abs() < 0.02, "{median}");

        let p: Vec<f64> = (0..n).map(|_| f64::from(r.poisson(0.7))).collect();
        let (m, s) = moments(&p);
        assert!(
            (m - 0.7).abs() < 0.01 && (s * s - 0.7).abs() < 0.02,
            "{m} {s}"
        );
        assert_eq!(r.poisson(0.0), 0);
        assert_eq!(r.poisson(f64::NAN), 0);
    }
}
