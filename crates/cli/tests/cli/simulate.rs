//! `refloop simulate`: deterministic for a seed, the baseline acts on nothing, and the
//! workflow run's figures are what the reports say for its database.

use refloop_testkit::{Backend, TestDb};

use crate::process::run;

const SMALL: [&str; 6] = ["--referrals-per-month", "90", "--days", "20", "--providers", "4"];

fn simulate(seed: &str, extra: &[&str]) -> serde_json::Value {
    simulate_sized(seed, &SMALL, extra)
}

fn simulate_sized(seed: &str, size: &[&str], extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["simulate", "--json", "--seed", seed];
    args.extend(size);
    args.extend(extra);
    let (ok, out, err) = run(&args, &[]);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn the_same_seed_gives_the_same_figures_and_the_baseline_sends_nothing() {
    let a = simulate("11", &[]);
    assert_eq!(a, simulate("11", &[]), "deterministic for a seed");
    let (baseline, workflow) = (&a["baseline"], &a["workflow"]);
    assert_eq!((baseline["messages_sent"].as_u64(), baseline["tasks_opened"].as_u64()), (Some(0), Some(0)));
    assert!(workflow["messages_sent"].as_u64().unwrap() > 0 && workflow["tasks_opened"].as_u64().unwrap() > 0);
    assert_eq!(baseline["referrals"], workflow["referrals"], "the same practice and orders");
    let rate = |r: &serde_json::Value| r["closed_loop_rate"].as_f64().unwrap();
    assert!(rate(workflow) > rate(baseline), "{a}");
    for key in
        ["referrals", "closed_loop_rate", "median_days_to_note", "leakage_by_stage", "messages_sent", "tasks_opened"]
    {
        assert!(!workflow[key].is_null(), "{key} in {workflow}");
    }
    assert_eq!(a["parameters"]["leak_no_note"], 0.3);
    assert!(a["parameters"]["recovered_no_note"].is_number());

    let other = simulate("12", &[]);
    assert_ne!(other["workflow"], a["workflow"], "another seed, another practice");
    let (ok, _, err) = run(&["simulate", "--specialties", "astrology"], &[]);
    assert!(!ok && err.contains("--specialties"), "{err}");
}

/// The what-ifs, off by default: on, the same practice (the same baseline) closes more loops,
/// the bookings they bring are counted, and their assumptions are printed. (The languages
/// what-if touches about 1 patient in 200: its lift is shown in the simulator's own test.)
#[test]
fn booking_links_and_languages_are_what_ifs_with_their_assumptions_printed() {
    let bigger = ["--referrals-per-month", "400", "--days", "30", "--providers", "4"];
    let off = simulate_sized("11", &bigger, &[]);
    let on = simulate_sized("11", &bigger, &["--with-booking-links", "--with-languages"]);
    assert_eq!(off["baseline"], on["baseline"], "the baseline sends no texts: unchanged");
    assert_eq!(
        (off["workflow"]["booked_from_link"].as_u64(), off["workflow"]["booked_in_language"].as_u64()),
        (Some(0), Some(0))
    );
    let booked = on["workflow"]["booked_from_link"].as_u64().unwrap();
    assert!(booked > 0 && on["workflow"]["booked_in_language"].is_u64(), "{}", on["workflow"]);
    // The lift: fewer patients still unbooked when the scheduling window runs out, fewer calls
    // to chase them; the loops close no less often (most would have been caught later).
    let w = |r: &serde_json::Value, key: &str| r["workflow"][key].as_f64().unwrap();
    assert!(
        w(&on, "unscheduled_at_window") < w(&off, "unscheduled_at_window"),
        "{} vs {}",
        on["workflow"],
        off["workflow"]
    );
    let calls = |r: &serde_json::Value| r["workflow"]["tasks_by_kind"]["schedule-follow-up"].as_u64().unwrap();
    assert!(calls(&on) < calls(&off));
    assert!(w(&on, "closed_loop_rate") >= w(&off, "closed_loop_rate"));
    assert_eq!(off["parameters"]["booking_links"], false);
    assert_eq!(on["parameters"]["booking_links"], true);
    assert_eq!(on["parameters"]["limited_english_share"], 0.08);
    let mut args = vec!["simulate", "--seed", "11", "--with-booking-links"];
    args.extend(SMALL);
    let (ok, out, err) = run(&args, &[]);
    assert!(ok, "{err}");
    assert!(out.contains("booked from the link in the text"), "{out}");
    assert!(out.contains("booking_link_books = 0.2: assumption"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workflow_run_equals_what_the_reports_say_for_its_database() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDb::new(backend).await;
        let a = simulate("11", &["--database", &db.url]);
        let (from, to) = (a["from"].as_str().unwrap(), a["to"].as_str().unwrap());
        // Asked at the moment the simulation ended (its last second), as the simulator asks:
        // which referrals are still within their windows depends on when one looks.
        let follow = a["parameters"]["follow_days"].as_i64().unwrap();
        let ended = from.parse::<jiff::Timestamp>().unwrap() + jiff::SignedDuration::from_hours((20 + follow) * 24)
            - jiff::SignedDuration::from_secs(1);
        let at = [("REFLOOP_CLOCK_MODE", "manual"), ("REFLOOP_CLOCK_START", &ended.to_string())];
        let (ok, out, err) =
            run(&["report", "closure", "--database", &db.url, "--from", from, "--to", to, "--json"], &at);
        assert!(ok, "{err}");
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        let w = &a["workflow"];
        assert_eq!(report["referrals"], w["referrals"]);
        assert_eq!(report["closed_loop"], w["closed_loop"]);
        assert_eq!(report["closed_loop_rate"], w["closed_loop_rate"]);
        assert_eq!(report["leakage_by_stage"], w["leakage_by_stage"]);
        assert_eq!(report["leakage_by_reason"], w["leakage_by_reason"]);
        assert_eq!(report["days"]["order-to-note"]["median_days"], w["median_days_to_note"]);
        assert_eq!(report["unscheduled_catch_rate"], w["scheduled_after_escalation_rate"]);
        // A database that holds referrals is not simulated into.
        let (ok, _, err) = run(&["simulate", "--database", &db.url, "--days", "2"], &[]);
        assert!(!ok && err.contains("empty database"), "{err}");
    }
}

/// The simulated practice is the seed article's: for three seeds every figure of its
/// before/after table falls inside its band, and `--check` says so by its exit status.
#[test]
fn the_calibrated_practice_falls_inside_every_band_of_the_seed_article_for_three_seeds() {
    let runs: Vec<_> = ["1", "7", "42"]
        .into_iter()
        .map(|seed| std::thread::spawn(move || (seed, run(&["simulate", "--check", "--json", "--seed", seed], &[]))))
        .collect();
    for handle in runs {
        let (seed, (ok, out, err)) = handle.join().unwrap();
        assert!(ok, "seed {seed}: {err}");
        let outcome: serde_json::Value = serde_json::from_str(&out).unwrap();
        let checks = outcome["checks"].as_array().unwrap();
        let figures: std::collections::BTreeSet<&str> = checks.iter().map(|c| c["figure"].as_str().unwrap()).collect();
        assert_eq!(figures.len(), 4, "closure, days to note, catch rate and staff hours: {figures:?}");
        for c in checks {
            let v = c["value"].as_f64().unwrap();
            assert!(
                c["within"] == true && v >= c["low"].as_f64().unwrap() && v <= c["high"].as_f64().unwrap(),
                "seed {seed}: {c}"
            );
        }
        let (b, w) = (&outcome["baseline"], &outcome["workflow"]);
        // Staff time is an output: chases by hand in the baseline, worklist tasks with the workflow.
        assert!(b["chases_by_hand"].as_u64().unwrap() > 0 && b["tasks_opened"] == 0, "{b}");
        assert!(w["chases_by_hand"] == 0 && w["tasks_opened"].as_u64().unwrap() > 0, "{w}");
        assert!(outcome["parameters"]["task_minutes"]["schedule-follow-up"].is_number());
    }
    // A practice too small for the table's figures: `--check` names what falls outside.
    let (ok, out, err) =
        run(&["simulate", "--check", "--seed", "7", "--referrals-per-month", "20", "--days", "5"], &[]);
    assert!(!ok && err.contains("outside the seed article's bands") && err.contains("(workflow)"), "{err}");
    assert!(out.contains("OUTSIDE") && out.contains("Assumptions"), "{out}");
}
