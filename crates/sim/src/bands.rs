//! The seed article's before/after table as bands: where the simulator's baseline and
//! workflow figures must fall for the simulated practice to be the one the article describes.

use serde::Serialize;

use crate::RunResult;

/// One figure of the table: its band without the workflow and with it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Band {
    pub figure: &'static str,
    pub baseline: (f64, f64),
    pub workflow: (f64, f64),
    pub source: &'static str,
    #[serde(skip)]
    value: fn(&RunResult) -> Option<f64>,
}

/// The seed article's table "Pre-Automation / 90 Days Post-Automation" and its
/// unscheduled-referral catch rate.
pub const BANDS: [Band; 4] = [
    Band {
        figure: "closed-loop rate (%)",
        baseline: (50.0, 70.0),
        workflow: (85.0, 95.0),
        source: "seed article: referral closure rate 50-70% before, 85-95% after",
        value: |r| r.closed_loop_rate.map(|x| x * 100.0),
    },
    Band {
        figure: "average days order to note",
        baseline: (45.0, 90.0),
        workflow: (20.0, 35.0),
        source: "seed article: average days to consult note 45-90 before, 20-35 after",
        value: |r| r.mean_days_to_note,
    },
    Band {
        figure: "unscheduled catch rate (%)",
        baseline: (25.0, 35.0),
        workflow: (90.0, 100.0),
        source: "seed article: 30% before, 95% after (assumption: read as within 5 points)",
        value: |r| r.unscheduled_catch_rate.map(|x| x * 100.0),
    },
    Band {
        figure: "staff hours a week chasing referrals",
        baseline: (5.0, 15.0),
        workflow: (1.0, 3.0),
        source: "seed article: 5-15 before, 1-3 after",
        value: |r| Some(r.staff_hours_per_week),
    },
];

/// One figure of one run against its band.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    pub figure: &'static str,
    pub run: &'static str,
    pub value: Option<f64>,
    pub low: f64,
    pub high: f64,
    pub within: bool,
    pub source: &'static str,
}

/// Every band against both runs, baseline first.
pub fn check(baseline: &RunResult, workflow: &RunResult) -> Vec<Check> {
    let mut out = Vec::new();
    for band in &BANDS {
        for (run, result, (low, high)) in [("baseline", baseline, band.baseline), ("workflow", workflow, band.workflow)]
        {
            let value = (band.value)(result);
            out.push(Check {
                figure: band.figure,
                run,
                value,
                low,
                high,
                within: value.is_some_and(|v| (low..=high).contains(&v)),
                source: band.source,
            });
        }
    }
    out
}
