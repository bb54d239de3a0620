//! `serve --demo`: the simulated practice living in a real database, and its directory.

use super::*;

/// The simulated practice's specialist directory: every specialist its referrals name, with
/// made-up contact data (555 numbers, `.example` Direct addresses); every seventh entry was
/// last verified four months ago, so the directory shows stale ones too.
pub fn demo_directory(p: &Params, now: Timestamp) -> Vec<refloop_app::Specialist> {
    let mut out = Vec::new();
    for (specialty, _) in &p.specialties {
        let Ok(code) = Specialty::parse(specialty) else { continue };
        for n in 0..u64::from(p.specialists_per_specialty.max(1)) {
            let i = out.len() as i64;
            let letter = (b'A' + n as u8) as char;
            let in_network = specialist_network(p, specialty, n);
            let verified = now - SignedDuration::from_hours(24 * if i % 7 == 3 { 120 } else { 3 + i % 40 });
            out.push(refloop_app::Specialist {
                id: format!("demo-{specialty}-{}", letter.to_ascii_lowercase()),
                name: format!("Dr {} {letter}", capitalised(specialty)),
                specialties: vec![code.clone()],
                network: if in_network { Network::InNetwork } else { Network::OutOfNetwork },
                phone: Some(format!("+1555555{:04}", 1000 + i)),
                fax: Some(format!("+1555556{:04}", 1000 + i)),
                direct_address: (i % 2 == 0)
                    .then(|| format!("{specialty}.{}@direct.specialists.example", letter.to_ascii_lowercase())),
                accepts_360x: i % 4 == 0,
                booking_url: (i % 3 == 0)
                    .then(|| format!("https://book.specialists.example/{specialty}-{}", letter.to_ascii_lowercase())),
                fhir_base: None,
                scheduling_manifest: None,
                manifest: None,
                last_verified: verified,
                updated_at: now,
            });
        }
    }
    out
}

/// Each demo referral's source id starts with this: a database holding others is not seeded.
pub const DEMO_PREFIX: &str = "demo:";

/// A simulated practice living in a real database (`serve --demo`): its last `days` of
/// referrals entered through the engine on a manual clock, the workflow acting and the people
/// answering; then [`DemoPractice::tick`] keeps new orders and the people's answers coming in
/// real time. Tasks of the last three days are left open for people to work.
pub struct DemoPractice {
    run: Run,
    clock: Arc<ManualClock>,
    connector: Arc<SimConnector>,
}

impl DemoPractice {
    /// Seeds `store` (which must hold no referrals) with the practice's days up to `now`; the
    /// practice's people answer what goes out through `connector` (give the service the same one).
    pub async fn seed(
        store: Arc<dyn Store>,
        policy: Policy,
        p: &Params,
        now: Timestamp,
        connector: Arc<SimConnector>,
    ) -> Result<Self, AppError> {
        let one = refloop_app::ReferralFilter { limit: 1, ..Default::default() };
        if !store.referrals(&one).await?.items.is_empty() {
            return Err(AppError::Conflict("demo data goes only into an empty database".into()));
        }
        let today = Timestamp::from_second(now.as_second() - now.as_second().rem_euclid(86_400))
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let start = today - days(f64::from(p.days));
        // A year of orders ahead, for the live part.
        let ahead = Params { days: p.days + 365, ..p.clone() };
        let clock = Arc::new(ManualClock::new(start));
        for entry in demo_directory(p, now) {
            store.upsert_specialist(&entry).await?;
        }
        let app = App::new(store, clock.clone(), policy, connector.clone());
        let mut run = Run::new(app, draw_fates(&ahead, start), true, DEMO_PREFIX);
        run.keep_tasks_after = Some(now - days(3.0));
        for day in 0..=p.days {
            let end = (start + days(f64::from(day) + 1.0) - SignedDuration::from_secs(1)).min(now);
            clock.set(end);
            run.step(end, &connector).await?;
        }
        Ok(DemoPractice { run, clock, connector })
    }

    /// New orders and the people's answers up to `now` (the service's own workers act on them).
    pub async fn tick(&mut self, now: Timestamp) -> Result<(), AppError> {
        self.clock.set(now);
        self.run.enter_orders(now, &self.connector).await?;
        self.run.apply_due(now).await?;
        // What the service's workers sent since the last tick, answered by the people.
        let log = std::mem::take(&mut *self.connector.log.lock().expect("lock"));
        self.run.answer(now, log).await
    }

    /// Referrals entered so far.
    pub fn referrals(&self) -> usize {
        self.run.next_order
    }
}
