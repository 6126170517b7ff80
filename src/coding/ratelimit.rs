//! Rate limits of the image routes: a token bucket per coder, so that a signed-in account
//! cannot be used to pull every face of the database in one go.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
pub struct RateLimiter {
    per_minute: f64,
    burst: f64,
    buckets: Mutex<HashMap<i64, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_minute` requests a minute on average, at most `burst` at once.
    pub fn new(per_minute: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            per_minute: f64::from(per_minute),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one request for `key`; false when its bucket is empty.
    pub fn allow(&self, key: i64) -> bool {
        self.allow_at(key, Instant::now())
    }

    fn allow_at(&self, key: i64, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = buckets.entry(key).or_insert((self.burst, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * self.per_minute / 60.0;
        *tokens = (*tokens + refill).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_refusal_then_refill_per_key() {
        let limiter = RateLimiter::new(60, 3);
        let t0 = Instant::now();
        assert!((0..3).all(|_| limiter.allow_at(1, t0)));
        assert!(!limiter.allow_at(1, t0));
        assert!(limiter.allow_at(2, t0), "another coder has its own bucket");
        assert!(
            limiter.allow_at(1, t0 + Duration::from_secs(1)),
            "one a second at 60/min"
        );
        assert!(!limiter.allow_at(1, t0 + Duration::from_secs(1)));
    }
}
