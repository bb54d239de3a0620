//! A transaction's writes and reads of referrals, patients, events and measure facts.

use super::*;

#[async_trait::async_trait]
impl ReferralTx for SqlTx {
    async fn lock_referral(&mut self, id: &ReferralId, skip_locked: bool) -> Result<Option<Referral>, StoreError> {
        self.flush(Only::Parents).await?;
        match &mut self.inner {
            // SQLite: this transaction already holds the write lock, so the referral's patient
            // comes in the same read (the engine looks it up next) instead of a second one.
            Inner::Sqlite(tx) => readahead::referral_with_patient(tx, &mut self.known_patients, id).await,
            Inner::Postgres(tx) => {
                let sql = if skip_locked {
                    "SELECT doc FROM referrals WHERE id = $1 FOR UPDATE SKIP LOCKED"
                } else {
                    "SELECT doc FROM referrals WHERE id = $1 FOR UPDATE"
                };
                let found = sqlx::query(sql).bind(id.as_str()).fetch_optional(&mut **tx).await.map_err(db)?;
                found.map(|r| row::referral(&r)).transpose()
            }
        }
    }

    async fn duplicate_candidate(
        &mut self,
        patient: &PatientId,
        specialty: &Specialty,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Option<DuplicateCandidate>, StoreError> {
        if let Some(known) = self.known_tracked.get(patient) {
            let newest = known
                .iter()
                .filter(|(_, s, at)| s.as_ref() == Some(specialty) && *at >= from && *at <= to)
                .max_by_key(|(_, _, at)| *at);
            return Ok(newest.map(|(id, _, at)| DuplicateCandidate { id: id.clone(), ordered_at: *at }));
        }
        self.flush(Only::Parents).await?;
        let found = on_tx!(self, c => {
            let found = sqlx::query(
                "SELECT id, ordered_at FROM referrals
                 WHERE patient_id = $1 AND specialty = $2 AND ordered_at BETWEEN $3 AND $4
                   AND tracked = $5
                 ORDER BY ordered_at DESC LIMIT 1",
            )
            .bind(patient.as_str())
            .bind(specialty.as_str())
            .bind(ms(from))
            .bind(ms(to))
            .bind(true)
            .fetch_optional(c)
            .await
            .map_err(db)?;
            match found {
                Some(r) => Some((row::Get::text(&r, "id")?, row::Get::int(&r, "ordered_at")?)),
                None => None,
            }
        });
        found
            .map(|(id, at)| {
                Ok(DuplicateCandidate {
                    id: ReferralId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    ordered_at: ts(at)?,
                })
            })
            .transpose()
    }

    async fn patient(&mut self, id: &PatientId) -> Result<Option<Patient>, StoreError> {
        self.load_patients(std::slice::from_ref(id), false).await?;
        Ok(self.known_patients.get(id).cloned().flatten())
    }

    async fn lock_patient(&mut self, id: &PatientId) -> Result<Option<Patient>, StoreError> {
        self.load_patients(std::slice::from_ref(id), true).await?;
        Ok(self.known_patients.get(id).cloned().flatten())
    }

    async fn upsert_patient(&mut self, p: &Patient, keep: PatientKeep) -> Result<Patient, StoreError> {
        self.load_patients(std::slice::from_ref(&p.id), true).await?;
        if self.pending.patients.iter().any(|(q, _)| q.id == p.id) {
            self.flush(Only::Parents).await?;
        }
        let stored = self.known_patients.get(&p.id).cloned().flatten();
        let merged = match &stored {
            Some(old) => Patient {
                sms_consent: if keep.consent { old.sms_consent } else { p.sms_consent },
                sms_opted_out: if keep.opt_out { old.sms_opted_out } else { p.sms_opted_out },
                // What an update does not say is kept.
                birth_date: p.birth_date.clone().or_else(|| old.birth_date.clone()),
                language: p.language.clone().or_else(|| old.language.clone()),
                ..p.clone()
            },
            None => p.clone(),
        };
        // A row read (and locked) here is overwritten with the merge; a new one keeps what a
        // concurrent insert of the same patient recorded, as the upsert says.
        let row_keep = if stored.is_some() { PatientKeep::default() } else { keep };
        self.pending.patients.push((merged.clone(), row_keep));
        self.known_patients.insert(p.id.clone(), Some(merged.clone()));
        Ok(merged)
    }

    async fn insert_referral(
        &mut self,
        r: &Referral,
        stage_due_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.pending.referrals.push((r.clone(), stage_due_at, now));
        self.pending.stats.push((r.clone(), stage_due_at));
        self.track(r);
        self.put_keys(r).await
    }

    async fn update_referral(
        &mut self,
        r: &Referral,
        expected_version: u64,
        stage_due_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.flush(Only::Parents).await?;
        let updated = on_tx!(self, c => {
            bind_referral!(sqlx::query(UPDATE_REFERRAL), r, stage_due_at, now)
                .bind(expected_version as i64)
                .execute(c)
                .await
                .map_err(db)?
                .rows_affected()
        });
        // Source ids are fixed when the referral is entered, so its keys were written then.
        if updated != 1 {
            return Err(StoreError::Conflict(format!("another writer changed referral {} first", r.id)));
        }
        self.pending.stats.push((r.clone(), stage_due_at));
        self.track(r);
        Ok(())
    }

    async fn append_events(&mut self, events: &[StoredEvent]) -> Result<(), StoreError> {
        self.pending.events.extend_from_slice(events);
        Ok(())
    }

    async fn put_provider(&mut self, id: &ProviderId, name: &str, now: Timestamp) -> Result<(), StoreError> {
        self.pending.put_provider(id.as_str(), name, now);
        Ok(())
    }

    async fn put_key(&mut self, key: &str, id: &ReferralId) -> Result<(), StoreError> {
        if self.referral_by_key(key).await?.is_some() {
            return Ok(());
        }
        on_tx!(self, c => {
            sqlx::query("INSERT INTO referral_keys (key, referral_id) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(key)
                .bind(id.as_str())
                .execute(c)
                .await
                .map(|_| ())
                .map_err(db)?
        });
        self.known_keys.insert(key.to_owned(), Some(id.clone()));
        Ok(())
    }

    async fn referral_by_key(&mut self, key: &str) -> Result<Option<ReferralId>, StoreError> {
        if let Some(known) = self.known_keys.get(key) {
            return Ok(known.clone().or_else(|| self.pending.find_key(key)));
        }
        let found: Option<String> = on_tx!(self, c => {
            sqlx::query_scalar("SELECT referral_id FROM referral_keys WHERE key = $1")
                .bind(key)
                .fetch_optional(c)
                .await
                .map_err(db)?
        });
        match found {
            Some(id) => ReferralId::parse(&id).map(Some).map_err(|e| StoreError::Corrupt(e.to_string())),
            None => Ok(self.pending.find_key(key)),
        }
    }

    async fn patients_born(&mut self, birth_date: &str) -> Result<Vec<Patient>, StoreError> {
        self.flush(Only::Parents).await?;
        on_tx!(self, c => {
            let rows = sqlx::query("SELECT * FROM patients WHERE birth_date = $1 ORDER BY id LIMIT 200")
                .bind(birth_date)
                .fetch_all(c)
                .await
                .map_err(db)?;
            rows.iter().map(|r| row::patient(r)).collect()
        })
    }

    async fn open_referrals(
        &mut self,
        patient: &PatientId,
        specialty: Option<&Specialty>,
    ) -> Result<Vec<Referral>, StoreError> {
        self.flush(Only::Parents).await?;
        on_tx!(self, c => {
            let rows = sqlx::query(
                "SELECT doc FROM referrals
                 WHERE patient_id = $1 AND ($2 IS NULL OR specialty = $2) AND tracked = $3
                   AND state IN ('ordered', 'patient-notified', 'scheduled', 'attended')
                 ORDER BY ordered_at DESC LIMIT 20",
            )
            .bind(patient.as_str())
            .bind(specialty.map(|s| s.as_str()))
            .bind(true)
            .fetch_all(c)
            .await
            .map_err(db)?;
            rows.iter().map(|r| row::referral(r)).collect()
        })
    }

    async fn put_fact(&mut self, key: &str, patient: &str, fact: &Fact, at: Timestamp) -> Result<(), StoreError> {
        let doc = serde_json::to_string(fact).map_err(|e| StoreError::Other(e.to_string()))?;
        let kind =
            serde_json::to_value(fact).ok().and_then(|v| v["kind"].as_str().map(str::to_owned)).unwrap_or_default();
        on_tx!(self, c => {
            sqlx::query(
                "INSERT INTO measure_facts (key, patient, kind, doc, updated_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (key) DO UPDATE SET patient = excluded.patient, kind = excluded.kind, doc = excluded.doc,
                     updated_at = excluded.updated_at",
            )
            .bind(key)
            .bind(patient)
            .bind(&kind)
            .bind(&doc)
            .bind(ms(at))
            .execute(c)
            .await
            .map(|_| ())
            .map_err(db)
        })
    }
}
