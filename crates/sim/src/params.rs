//! Every assumption of the simulator: a named parameter with its default and where the
//! default comes from. The results follow from these; they are printed with them.

use refloop_domain::TaskKind;
use serde::Serialize;
use std::collections::BTreeMap;

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
    /// Share of each stage's leaks that staff working by hand find and chase (baseline) …
    pub manual_chase: f64,
    /// … and share of those chases that work. The same people answer a worklist call in the
    /// workflow run: a leak staff would have recovered by hand is recovered there too.
    pub manual_chase_success: f64,
    /// Days after a stage's window ran out before staff working by hand find the leak.
    pub mean_days_to_find_by_hand: f64,
    /// Staff minutes for one chase by hand (baseline).
    pub minutes_per_chase_by_hand: f64,
    /// Staff minutes for one worklist task, by kind (workflow run).
    pub task_minutes: Vec<(TaskKind, f64)>,
    /// Patients without SMS consent get a portal message (workflow run).
    pub portal_messages: bool,
    pub mean_days_to_notify_by_hand: f64,
    pub mean_days_notified_to_scheduled: f64,
    pub mean_days_scheduled_to_visit: f64,
    /// Days from the visit until the specialist sends the note (when they do) …
    pub mean_days_visit_to_note: f64,
    /// … and until someone files a note nobody asked for or looked for into the chart.
    pub mean_days_to_file_by_hand: f64,
    pub mean_days_to_respond_to_workflow: f64,
    /// What-if (off by default): stage-1 texts carry a link to book when the specialist has a
    /// booking page (workflow run).
    pub booking_links: bool,
    /// Share of specialists with an online booking page or a scheduling manifest.
    pub booking_page_share: f64,
    /// Share of texted patients who would not have booked who book from the link.
    pub booking_link_books: f64,
    /// What-if (off by default): texts go in the patient's language (workflow run).
    pub languages: bool,
    /// Share of patients with limited English.
    pub limited_english_share: f64,
    /// Share of those patients, texted and not booking, who book once the texts are in their
    /// language.
    pub language_books: f64,
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
            manual_chase: 0.42,
            manual_chase_success: 0.8,
            mean_days_to_find_by_hand: 14.0,
            minutes_per_chase_by_hand: 15.0,
            task_minutes: TaskKind::ALL.iter().map(|k| (*k, default_task_minutes(*k))).collect(),
            portal_messages: true,
            mean_days_to_notify_by_hand: 2.0,
            mean_days_notified_to_scheduled: 2.0,
            mean_days_scheduled_to_visit: 7.0,
            mean_days_visit_to_note: 10.0,
            mean_days_to_file_by_hand: 25.0,
            mean_days_to_respond_to_workflow: 3.0,
            booking_links: false,
            booking_page_share: 0.5,
            booking_link_books: 0.2,
            languages: false,
            limited_english_share: 0.08,
            language_books: 0.3,
        }
    }
}

/// Staff minutes for one worklist task of a kind: the page holds the number, the script and
/// the specialist's details, so a call is dialled, answered or left as a voicemail, and logged.
fn default_task_minutes(kind: TaskKind) -> f64 {
    match kind {
        // The referring physician's decision, not staff time chasing referrals.
        TaskKind::PhysicianEscalation => 0.0,
        // A look at the chart in the EHR the practice shares with the specialist.
        TaskKind::NoteReview | TaskKind::ReviewMatch => 1.5,
        // Most calls reach voicemail: the scripted message is left and the outcome logged.
        TaskKind::NotifyPatient | TaskKind::ScheduleFollowUp | TaskKind::AttendanceCall => 1.5,
        TaskKind::ConfirmDelivery | TaskKind::DeliveryFailed => 2.0,
        TaskKind::FixContact | TaskKind::PatientReply => 3.0,
        TaskKind::VerifySpecialist | TaskKind::SpecialistDeclined | TaskKind::RecordsRequest => 5.0,
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
            a("seed", json!(self.seed), "assumption: chosen on the command line"),
            a("providers", json!(self.providers), "seed article: a 12-provider practice"),
            a("referrals_per_month", json!(self.referrals_per_month), "seed article: 600 referrals a month"),
            a("days", json!(self.days), "seed article: 90 days after automation"),
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
                "manual_chase",
                json!(self.manual_chase),
                "assumption: without a worklist staff find fewer than half of the leaks, late",
            ),
            a(
                "manual_chase_success",
                json!(self.manual_chase_success),
                "assumption: most chases by hand reach the patient or the specialist's office",
            ),
            a(
                "mean_days_to_find_by_hand",
                json!(self.mean_days_to_find_by_hand),
                "assumption: a stalled referral is noticed about two weeks after its window",
            ),
            a(
                "minutes_per_chase_by_hand",
                json!(self.minutes_per_chase_by_hand),
                "assumption: finding the paper trail, then calling the patient or the specialist's office",
            ),
            a(
                "task_minutes",
                json!(self.task_minutes.iter().map(|(k, m)| (k.as_str(), *m)).collect::<BTreeMap<_, _>>()),
                "assumption: a worklist call has the number, the script and the specialist on the page; a physician's escalation is not staff time",
            ),
            a(
                "portal_messages",
                json!(self.portal_messages),
                "seed article: without SMS consent, a portal message instead",
            ),
            a("mean_days_to_notify_by_hand", json!(self.mean_days_to_notify_by_hand), "assumption"),
            a(
                "mean_days_notified_to_scheduled",
                json!(self.mean_days_notified_to_scheduled),
                "assumption: a patient who books does so within days",
            ),
            a(
                "mean_days_scheduled_to_visit",
                json!(self.mean_days_scheduled_to_visit),
                "assumption: the wait for a new-patient appointment, about a week",
            ),
            a(
                "mean_days_visit_to_note",
                json!(self.mean_days_visit_to_note),
                "assumption: a specialist who sends the note does so within about ten days",
            ),
            a(
                "mean_days_to_file_by_hand",
                json!(self.mean_days_to_file_by_hand),
                "assumption: a note that comes back by fax or Direct waits in a pile until someone files it (seed article: look for it from day 14)",
            ),
            a(
                "mean_days_to_respond_to_workflow",
                json!(self.mean_days_to_respond_to_workflow),
                "assumption: patients and specialists answer a reminder within days",
            ),
            a(
                "booking_links",
                json!(self.booking_links),
                "assumption: a what-if, off by default (--with-booking-links): texts carry a link to book",
            ),
            a(
                "booking_page_share",
                json!(self.booking_page_share),
                "assumption: half the specialists publish a booking page or a SMART Scheduling Links manifest",
            ),
            a(
                "booking_link_books",
                json!(self.booking_link_books),
                "assumption: one texted patient in five who would not have booked books from the link (the seed article: the patient who never schedules is the second largest leak)",
            ),
            a(
                "languages",
                json!(self.languages),
                "assumption: a what-if, off by default (--with-languages): texts go in the patient's language",
            ),
            a(
                "limited_english_share",
                json!(self.limited_english_share),
                "published: US Census Bureau, American Community Survey — about 8% of US residents speak English less than \"very well\"",
            ),
            a(
                "language_books",
                json!(self.language_books),
                "assumption: three in ten limited-English patients who would not have booked book when the texts are in their language",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_assumption_names_the_seed_article_or_says_it_is_an_assumption() {
        let all = Params::default().assumptions();
        assert!(all.len() > 20);
        for a in all {
            assert!(
                a.source.starts_with("seed article")
                    || a.source.starts_with("assumption")
                    || a.source.starts_with("published: "),
                "{}: {}",
                a.name,
                a.source
            );
        }
        for band in crate::BANDS {
            assert!(band.source.starts_with("seed article"), "{}", band.source);
        }
    }
}
