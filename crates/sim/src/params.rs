//! Every assumption of the simulator: a named parameter with its default and where the
//! default comes from. The results follow from these; they are printed with them.

use serde::Serialize;

/// The seed article: "Automate Patient Referral Tracking: Recover 40% Lost Leakage 2026",
/// its table "Leakage Breakdown by Referral Stage".
pub const ARTICLE: &str = "seed article, leakage table";

/// One stage's behaviour: how often it leaks, how often staff working by hand recover it
/// anyway, and how often the workflow recovers a leak when it acts on time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct StageParams {
    pub leak: f64,
    pub recovered_by_workflow: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Params {
    pub seed: u64,
    pub providers: u32,
    pub referrals_per_month: u32,
    /// Days of orders; outcomes are then followed for `follow_days` more.
    pub days: u32,
    pub follow_days: u32,
    /// Specialty codes and their share of referrals.
    pub specialties: Vec<(String, f64)>,
    pub specialists_per_specialty: u32,
    pub urgent_share: f64,
    pub in_network_share: f64,
    pub sms_consent_share: f64,
    pub valid_phone_share: f64,
    pub not_notified: StageParams,
    pub never_schedules: StageParams,
    pub no_show: StageParams,
    pub no_note: StageParams,
    /// Share of each stage's leaks that staff recover by hand, without refloop (both runs).
    pub manual_recovery: f64,
    pub mean_days_to_notify_by_hand: f64,
    pub mean_days_notified_to_scheduled: f64,
    pub mean_days_scheduled_to_visit: f64,
    pub mean_days_visit_to_note: f64,
    pub mean_days_to_respond_to_workflow: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            seed: 7,
            providers: 12,
            referrals_per_month: 600,
            days: 90,
            follow_days: 120,
            specialties: [
                ("cardiology", 0.16),
                ("dermatology", 0.14),
                ("orthopedics", 0.14),
                ("gastroenterology", 0.12),
                ("neurology", 0.10),
                ("endocrinology", 0.08),
                ("ophthalmology", 0.08),
                ("otolaryngology", 0.07),
                ("urology", 0.06),
                ("pulmonology", 0.05),
            ]
            .iter()
            .map(|(s, w)| ((*s).to_owned(), *w))
            .collect(),
            specialists_per_specialty: 3,
            urgent_share: 0.12,
            in_network_share: 0.5,
            sms_consent_share: 0.8,
            valid_phone_share: 0.95,
            not_notified: StageParams { leak: 0.125, recovered_by_workflow: 0.95 },
            never_schedules: StageParams { leak: 0.25, recovered_by_workflow: 0.70 },
            no_show: StageParams { leak: 0.125, recovered_by_workflow: 0.50 },
            no_note: StageParams { leak: 0.30, recovered_by_workflow: 0.85 },
            manual_recovery: 0.35,
            mean_days_to_notify_by_hand: 2.0,
            mean_days_notified_to_scheduled: 5.0,
            mean_days_scheduled_to_visit: 14.0,
            mean_days_visit_to_note: 10.0,
            mean_days_to_respond_to_workflow: 3.0,
        }
    }
}

/// A parameter as printed: its name, value and the source of its default.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Assumption {
    pub name: &'static str,
    pub value: serde_json::Value,
    pub source: &'static str,
}

impl Params {
    /// Every parameter with its source, in a stable order.
    pub fn assumptions(&self) -> Vec<Assumption> {
        use serde_json::json;
        let a = |name, value, source| Assumption { name, value, source };
        let mix: serde_json::Map<String, serde_json::Value> =
            self.specialties.iter().map(|(s, w)| (s.clone(), json!(w))).collect();
        vec![
            a("seed", json!(self.seed), "command line"),
            a("providers", json!(self.providers), "issue: a 12-provider practice"),
            a("referrals_per_month", json!(self.referrals_per_month), "issue: 600 referrals a month"),
            a("days", json!(self.days), "issue: 90 days of orders"),
            a("follow_days", json!(self.follow_days), "assumption: long enough for late notes to come back"),
            a("specialty_mix", json!(mix), "assumption: a typical primary-care referral mix"),
            a("specialists_per_specialty", json!(self.specialists_per_specialty), "assumption"),
            a("urgent_share", json!(self.urgent_share), "assumption: about one referral in eight is urgent"),
            a("in_network_share", json!(self.in_network_share), "assumption"),
            a("sms_consent_share", json!(self.sms_consent_share), "assumption"),
            a("valid_phone_share", json!(self.valid_phone_share), "assumption: 1 number in 20 is wrong"),
            a("leak_not_notified", json!(self.not_notified.leak), "seed article, leakage table: 10-15%"),
            a("leak_never_schedules", json!(self.never_schedules.leak), "seed article, leakage table: 20-30%"),
            a("leak_no_show", json!(self.no_show.leak), "seed article, leakage table: 10-15%"),
            a("leak_no_note", json!(self.no_note.leak), "seed article, leakage table: 25-35% without follow-up"),
            a(
                "recovered_not_notified",
                json!(self.not_notified.recovered_by_workflow),
                "seed article, recoverable via automation: ~95%",
            ),
            a(
                "recovered_never_schedules",
                json!(self.never_schedules.recovered_by_workflow),
                "seed article, recoverable via automation: ~70%",
            ),
            a(
                "recovered_no_show",
                json!(self.no_show.recovered_by_workflow),
                "seed article, recoverable via automation: ~50%",
            ),
            a(
                "recovered_no_note",
                json!(self.no_note.recovered_by_workflow),
                "seed article, recoverable via automation: ~85%",
            ),
            a(
                "manual_recovery",
                json!(self.manual_recovery),
                "assumption: staff chase referrals by hand 5-15 h a week (seed article) and recover about a third of each stage's leaks",
            ),
            a("mean_days_to_notify_by_hand", json!(self.mean_days_to_notify_by_hand), "assumption"),
            a("mean_days_notified_to_scheduled", json!(self.mean_days_notified_to_scheduled), "assumption"),
            a("mean_days_scheduled_to_visit", json!(self.mean_days_scheduled_to_visit), "assumption"),
            a("mean_days_visit_to_note", json!(self.mean_days_visit_to_note), "assumption"),
            a(
                "mean_days_to_respond_to_workflow",
                json!(self.mean_days_to_respond_to_workflow),
                "assumption: patients and specialists answer a reminder within days",
            ),
        ]
    }

    /// Keeps only the named specialties (their shares renormalised by the draw).
    pub fn only_specialties(&mut self, names: &[String]) -> Result<(), String> {
        for n in names {
            if !self.specialties.iter().any(|(s, _)| s == n) {
                let known: Vec<&str> = self.specialties.iter().map(|(s, _)| s.as_str()).collect();
                return Err(format!("unknown specialty {n}; known: {}", known.join(", ")));
            }
        }
        self.specialties.retain(|(s, _)| names.contains(s));
        Ok(())
    }
}
