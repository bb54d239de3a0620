//! `serve --demo`: a small practice's recent referrals, entered through the real write
//! path so that timers, tasks and messages follow. Every demo referral carries the source
//! id `demo:N`; a database holding anything else is never seeded.

use anyhow::bail;
use jiff::SignedDuration;
use refloop_app::{Actor, App, NewReferral, PatientInput, ReferralFilter};
use refloop_domain::{Input, Network, Origin, PatientId, ProviderId, Specialty, State, Urgency};

const SPECIALTIES: &[&str] =
    &["cardiology", "dermatology", "orthopedics", "gastroenterology", "neurology", "endocrinology"];
const PROVIDERS: &[&str] = &["dr-adams", "dr-baker", "dr-chen", "dr-diaz"];
const REFERRALS: u64 = 80;

/// A tiny deterministic generator so every demo looks the same.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

pub async fn seed(app: &App) -> anyhow::Result<()> {
    let existing = app.store().referrals(&ReferralFilter { limit: 1, ..ReferralFilter::default() }).await?;
    if let Some(r) = existing.items.first() {
        if r.source_ids.iter().any(|s| s.starts_with("demo:")) {
            tracing::info!("demo data already present; not seeding again");
            return Ok(());
        }
        bail!("refusing to seed demo data: this database already holds real referrals");
    }
    let actor = Actor::system("demo");
    let now = app.now();
    let mut rng = Lcg(7);
    for n in 0..REFERRALS {
        let age_days = rng.next(60) as i64;
        let ordered_at = now - SignedDuration::from_hours(age_days * 24 + rng.next(10) as i64);
        let req = NewReferral {
            patient_id: PatientId::parse(&format!("demo-patient-{n}"))?,
            patient: Some(PatientInput {
                name: Some(format!("Demo Patient {n}")),
                phone: (rng.next(10) > 0).then(|| format!("+1555555{:04}", 100 + n)),
                sms_consent: Some(rng.next(10) > 1),
                time_zone: None,
            }),
            referring_provider: ProviderId::parse(PROVIDERS[rng.next(PROVIDERS.len() as u64) as usize])?,
            specialty: Some(Specialty::parse(SPECIALTIES[rng.next(SPECIALTIES.len() as u64) as usize])?),
            specialist: None,
            urgency: if rng.next(5) == 0 { Urgency::Urgent } else { Urgency::Routine },
            origin: Origin::PhysicianOrder,
            network: if rng.next(2) == 0 { Network::InNetwork } else { Network::OutOfNetwork },
            reason: None,
            ordered_at: Some(ordered_at),
            source_ids: vec![format!("demo:{n}")],
            historical: false,
        };
        let r = app.create_referral(&actor, req).await?;
        // How far this one got, days after the order for each step.
        let reach = rng.next(100);
        let steps: &[(State, i64)] = match reach {
            0..=14 => &[],
            15..=39 => &[(State::PatientNotified, 1)],
            40..=54 => &[(State::PatientNotified, 1), (State::Scheduled, 5)],
            55..=69 => &[(State::PatientNotified, 1), (State::Scheduled, 4), (State::Attended, 20)],
            _ => {
                &[(State::PatientNotified, 1), (State::Scheduled, 4), (State::Attended, 18), (State::NoteReceived, 30)]
            }
        };
        for (state, day) in steps {
            let at = ordered_at + SignedDuration::from_hours(day * 24);
            if at > now {
                break;
            }
            let appointment_at = (*state == State::Scheduled).then(|| at + SignedDuration::from_hours(14 * 24));
            app.record(&actor, &r.id, Input::Milestone { state: *state, at, appointment_at, channel: None }).await?;
        }
    }
    tracing::info!(referrals = REFERRALS, "demo data seeded");
    Ok(())
}

/// The demo's sign-in: `demo` / `refloop-demo`, created only when the database has no users.
pub const DEMO_USER: (&str, &str) = ("demo", "refloop-demo");

pub async fn ensure_user(app: &App) -> anyhow::Result<()> {
    if app.users().await?.is_empty() {
        app.save_user(DEMO_USER.0, refloop_app::Role::Admin, DEMO_USER.1).await?;
        tracing::warn!(user = DEMO_USER.0, "demo sign-in created; password refloop-demo (demo data only)");
    }
    Ok(())
}
