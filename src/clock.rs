//! Time as the log sees it, injectable so that tests of time-based behaviour
//! (segment age, retention, timeouts) run instantly.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
#[cfg(not(all(unix, target_pointer_width = "64")))]
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + Debug {
    /// The time now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system's real-time clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// Runs once per record sent: `clock_gettime` itself, not
    /// `SystemTime::now().duration_since(UNIX_EPOCH)` (about 60 more
    /// instructions of checked arithmetic, a tenth of a batched send).
    // 64-bit targets only: there `time_t` is 64 bits and `timespec` has no
    // padding field to fill (32-bit musl's has).
    #[cfg(all(unix, target_pointer_width = "64"))]
    #[allow(unsafe_code, reason = "one libc call with a local out-parameter")]
    fn now_ms(&self) -> i64 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec for the call's duration.
        if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) } != 0 || ts.tv_sec < 0 {
            return 0; // before 1970, as `SystemTime` would say
        }
        ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
    }

    #[cfg(not(all(unix, target_pointer_width = "64")))]
    fn now_ms(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
    }
}

/// A clock that moves only when told to. For tests: give it to
/// [`BrokerOptions::clock`](crate::BrokerOptions::clock) (or
/// [`PartitionOptions::clock`](crate::PartitionOptions::clock)) and
/// retention, segment ages, record timestamps and group timeouts follow it,
/// so a test of "a week later" runs instantly.
///
/// Retention by time, two hours later:
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use streamlog::{Broker, BrokerOptions, ManualClock, ProducerRecord, TopicConfig};
///
/// let clock = Arc::new(ManualClock::new(1_700_000_000_000));
/// let opts = BrokerOptions::default().fsync(false).clock(clock.clone()).maintenance_interval(None);
/// let broker = Broker::temporary_with(opts)?;
/// // Keep records for an hour; roll segments after an hour of records.
/// let hour = Duration::from_secs(3600);
/// broker.create_topic("events", TopicConfig::default().retention(Some(hour)).segment_age(hour))?;
/// let producer = broker.producer();
/// for i in 0..100 {
///     producer.send(ProducerRecord::new("events", format!("old {i}")))?; // stamped by the clock
/// }
/// clock.advance(2 * hour);
/// producer.send(ProducerRecord::new("events", "new"))?; // rolls: its segment would span 2 hours
/// broker.run_maintenance()?; // what the maintenance thread does every `maintenance_interval`
/// let log = broker.topic("events")?.partition(0)?;
/// assert_eq!(log.log_start_offset(), 100); // the old segment is gone
/// assert_eq!(log.high_watermark(), 101);
/// broker.close()?;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `now_ms` (milliseconds since the Unix epoch).
    pub fn new(now_ms: i64) -> ManualClock {
        ManualClock(AtomicI64::new(now_ms))
    }

    /// Sets the time (it may go backwards).
    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        self.0.fetch_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::{Clock, SystemClock};

    #[test]
    fn the_system_clock_reads_what_system_time_reads() {
        let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        let before = ms(SystemTime::now());
        let now = SystemClock.now_ms();
        let after = ms(SystemTime::now());
        assert!((before..=after).contains(&now), "{before} <= {now} <= {after}");
    }
}
