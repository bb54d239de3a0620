//! A transaction's staff tasks: opening, closing, changing them and their history.

use super::*;

#[async_trait::async_trait]
impl TaskTx for SqlTx {
    async fn change_task(&mut self, id: &str, change: &TaskChange) -> Result<Option<Task>, StoreError> {
        self.flush(Only::Tasks).await?;
        let row = on_tx!(self, c => {
            let q = match change {
                TaskChange::Claim { assignee, reassign } => sqlx::query(
                    "UPDATE tasks SET status = 'claimed', assignee = $2
                     WHERE id = $1 AND (status = 'open' OR ($3 AND status = 'claimed')) RETURNING *",
                )
                .bind(id)
                .bind(assignee.clone())
                .bind(*reassign),
                TaskChange::Complete { by, outcome, note, at } => sqlx::query(
                    "UPDATE tasks SET status = 'done', completed_at = $2, outcome = $3, note = $4,
                            assignee = COALESCE(assignee, $5)
                     WHERE id = $1 AND status IN ('open', 'claimed') RETURNING *",
                )
                .bind(id)
                .bind(ms(*at))
                .bind(outcome.clone())
                .bind(note.clone())
                .bind(by.clone()),
                TaskChange::Retry { outcome, note, due_at } => sqlx::query(
                    "UPDATE tasks SET status = 'open', assignee = NULL, due_at = $2, outcome = $3, note = $4,
                            attempts = attempts + 1
                     WHERE id = $1 AND status IN ('open', 'claimed') RETURNING *",
                )
                .bind(id)
                .bind(ms(*due_at))
                .bind(outcome.clone())
                .bind(note.clone()),
            };
            q.fetch_optional(&mut *c).await.map_err(db)?.map(|r| row::task(&r)).transpose()?
        });
        Ok(row)
    }

    async fn log_task(&mut self, e: &TaskLogEntry) -> Result<(), StoreError> {
        on_tx!(self, c => {
            sqlx::query(
                "INSERT INTO task_log (task_id, referral_id, at, actor, action, assignee, outcome, note)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(e.task_id.clone())
            .bind(e.referral_id.as_str().to_owned())
            .bind(ms(e.at))
            .bind(e.actor.clone())
            .bind(e.action.clone())
            .bind(e.assignee.clone())
            .bind(e.outcome.clone())
            .bind(e.note.clone())
            .execute(&mut *c)
            .await
            .map_err(db)?;
        });
        Ok(())
    }

    async fn open_task(&mut self, t: &NewTask) -> Result<(), StoreError> {
        self.pending.tasks.push(t.clone());
        Ok(())
    }

    async fn close_tasks(
        &mut self,
        id: &ReferralId,
        kinds: &[TaskKind],
        now: Timestamp,
        outcome: &str,
    ) -> Result<(), StoreError> {
        if kinds.is_empty() {
            return Ok(());
        }
        self.flush(Only::Tasks).await?;
        // One statement for every kind.
        on_tx!(self, c => {
            let mut q = sqlx::QueryBuilder::new("UPDATE tasks SET status = 'done', completed_at = ");
            q.push_bind(ms(now)).push(", outcome = ").push_bind(outcome).push(" WHERE referral_id = ");
            q.push_bind(id.as_str()).push(" AND status IN ('open', 'claimed') AND kind IN (");
            let mut list = q.separated(", ");
            for kind in kinds {
                list.push_bind(kind.as_str());
            }
            q.push(")");
            q.build().execute(c).await.map_err(db)?;
        });
        Ok(())
    }

    async fn close_inbox_tasks(&mut self, inbox_id: &str, now: Timestamp, outcome: &str) -> Result<(), StoreError> {
        self.flush(Only::Tasks).await?;
        on_tx!(self, c => {
            sqlx::query(
                "UPDATE tasks SET status = 'done', completed_at = $2, outcome = $3
                 WHERE inbox_id = $1 AND status IN ('open', 'claimed')",
            )
            .bind(inbox_id)
            .bind(ms(now))
            .bind(outcome)
            .execute(c)
            .await
            .map_err(db)?;
        });
        Ok(())
    }
}
