//! Runs of ticks whose price read the request budget deferred: counted so that a long
//! run is warned about once, not once per tick.

/// Consecutive ticks with their price read deferred by the request budget past which the
/// run is warned about (once per run): a long run means the plan's budget is too small
/// for the tick interval, and nothing is priced meanwhile.
pub(super) const DEFERRED_TICKS_WARN: u32 = 60;

/// A run of consecutive ticks whose price read was deferred: counted so that a long run is
/// warned about once, not once per tick.
#[derive(Debug, Default)]
pub(super) struct DeferredRun {
    /// Deferred ticks in the current run.
    pub(super) ticks: u32,
}

impl DeferredRun {
    /// One more deferred tick; true exactly once per run, when it passes
    /// [`DEFERRED_TICKS_WARN`].
    pub(super) fn deferred(&mut self) -> bool {
        self.ticks = self.ticks.saturating_add(1);
        self.ticks == DEFERRED_TICKS_WARN + 1
    }

    /// A tick that was not deferred ends the run: its length when it was warned about.
    pub(super) fn ended(&mut self) -> Option<u32> {
        let ticks = std::mem::take(&mut self.ticks);
        (ticks > DEFERRED_TICKS_WARN).then_some(ticks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_run_of_deferred_ticks_is_warned_about_once_and_a_priced_tick_resets_it() {
        let mut run = DeferredRun::default();
        let warnings = (0..3 * DEFERRED_TICKS_WARN)
            .filter(|_| run.deferred())
            .count();
        assert_eq!(warnings, 1, "once per run, not per tick");
        assert_eq!(run.ended(), Some(3 * DEFERRED_TICKS_WARN));
        // A new run starts from zero: a short one is not warned about, nor its end told.
        let short = (0..DEFERRED_TICKS_WARN).filter(|_| run.deferred()).count();
        assert_eq!(
            short, 0,
            "{DEFERRED_TICKS_WARN} deferred ticks are not a long run"
        );
        assert_eq!(run.ended(), None);
        assert_eq!(
            (0..=DEFERRED_TICKS_WARN).filter(|_| run.deferred()).count(),
            1,
            "the next long run is warned about again"
        );
    }
}
