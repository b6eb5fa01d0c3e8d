//! A lead's pipeline history (status changes) and its tasks.

use super::rows::Col;
use super::{Result, Store, StoreError, Tx, new_id};
use crate::domain::Status;

#[derive(Debug, Clone)]
pub struct StatusChangeRow {
    pub from_status: Status,
    pub to_status: Status,
    pub actor: Option<String>,
    pub at: i64,
}

#[derive(Debug, Clone)]
pub struct TaskRow {
    pub id: String,
    pub lead_id: String,
    pub title: String,
    pub due_at: Option<i64>,
    pub done_at: Option<i64>,
    pub created_by: Option<String>,
    pub created_at: i64,
}

/// A change to a task. `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct TaskPatch {
    pub title: Option<String>,
    pub due_at: Option<Option<i64>>,
    pub done: Option<bool>,
}

const TASK_COLUMNS: &str = "id, lead_id, title, due_at, done_at, created_by, created_at";

fn task_row(r: &sqlx::any::AnyRow) -> Result<TaskRow> {
    Ok(TaskRow {
        id: r.col("id")?,
        lead_id: r.col("lead_id")?,
        title: r.col("title")?,
        due_at: r.col("due_at")?,
        done_at: r.col("done_at")?,
        created_by: r.col("created_by")?,
        created_at: r.col("created_at")?,
    })
}

impl Store {
    pub async fn status_changes(&self, lead_id: &str) -> Result<Vec<StatusChangeRow>> {
        sqlx::query("SELECT from_status, to_status, actor, at FROM status_changes WHERE lead_id = $1 ORDER BY at, id")
            .bind(lead_id.to_owned())
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| {
                Ok(StatusChangeRow {
                    from_status: r.col_as("from_status")?,
                    to_status: r.col_as("to_status")?,
                    actor: r.col("actor")?,
                    at: r.col("at")?,
                })
            })
            .collect()
    }

    pub async fn tasks(&self, lead_id: &str) -> Result<Vec<TaskRow>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE lead_id = $1 ORDER BY created_at, id"
        )))
        .bind(lead_id.to_owned())
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(task_row)
        .collect()
    }
}

impl Tx {
    pub async fn add_task(
        &mut self,
        lead_id: &str,
        title: &str,
        due_at: Option<i64>,
        created_by: Option<&str>,
        now: i64,
    ) -> Result<TaskRow> {
        let task = TaskRow {
            id: new_id(),
            lead_id: lead_id.to_owned(),
            title: title.to_owned(),
            due_at,
            done_at: None,
            created_by: created_by.map(str::to_owned),
            created_at: now,
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO tasks ({TASK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )))
        .bind(task.id.clone())
        .bind(task.lead_id.clone())
        .bind(task.title.clone())
        .bind(task.due_at)
        .bind(task.done_at)
        .bind(task.created_by.clone())
        .bind(task.created_at)
        .execute(&mut *self.tx)
        .await?;
        self.touch_lead(lead_id, now).await?;
        Ok(task)
    }

    /// Applies `patch` to a task of `lead_id`; a task of another lead is not found.
    pub async fn update_task(&mut self, lead_id: &str, task_id: &str, patch: &TaskPatch, now: i64) -> Result<TaskRow> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1 AND lead_id = $2"
        )))
        .bind(task_id.to_owned())
        .bind(lead_id.to_owned())
        .fetch_optional(&mut *self.tx)
        .await?
        .ok_or(StoreError::NotFound("task"))?;
        let mut task = task_row(&row)?;
        if let Some(title) = &patch.title {
            task.title = title.clone();
        }
        if let Some(due) = patch.due_at {
            task.due_at = due;
        }
        match patch.done {
            Some(true) => task.done_at = task.done_at.or(Some(now)),
            Some(false) => task.done_at = None,
            None => {}
        }
        sqlx::query("UPDATE tasks SET title = $1, due_at = $2, done_at = $3 WHERE id = $4")
            .bind(task.title.clone())
            .bind(task.due_at)
            .bind(task.done_at)
            .bind(task.id.clone())
            .execute(&mut *self.tx)
            .await?;
        self.touch_lead(lead_id, now).await?;
        Ok(task)
    }

    /// Work on a lead is activity: it is not stale.
    pub async fn touch_lead(&mut self, lead_id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE leads SET last_activity_at = $1, updated_at = $1 WHERE id = $2 AND last_activity_at < $1")
            .bind(now)
            .bind(lead_id.to_owned())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}
