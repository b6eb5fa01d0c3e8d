//! Several statements in one round trip. On SQLite a batch runs as one multi-statement script
//! (sqlx hands every call to the connection's worker thread, and on small machines the thread
//! hand-off costs more than the SQL). On PostgreSQL the statements run one after another, and
//! each write can carry a guard: a row count that, when not met, means a concurrent writer got
//! there first and the unit of work must be retried. On SQLite the guards hold by construction:
//! `BEGIN IMMEDIATE` makes the transaction the only writer between its reads and its writes.

use std::borrow::Cow;

use sqlx::AnyConnection;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Arguments, AssertSqlSafe, Row};

use super::{Backend, Result, StoreError, Tx};

#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Blob(Vec<u8>),
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_owned()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_owned))
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<Vec<u8>> for Arg {
    fn from(v: Vec<u8>) -> Self {
        Arg::Blob(v)
    }
}

fn bind(args: &mut AnyArguments, arg: Arg) {
    // `AnyArguments::add` only fails for types `Any` cannot carry; these three it can.
    let _ = match arg {
        Arg::Text(v) => args.add(v),
        Arg::Int(v) => args.add(v),
        Arg::Blob(v) => args.add(v),
    };
}

#[derive(Debug, Clone)]
struct Stmt {
    sql: Cow<'static, str>,
    args: Vec<Arg>,
    returns_rows: bool,
    /// Rows a write must affect (checked on PostgreSQL).
    expect_rows: Option<u64>,
}

/// Statements to run together, each with its own `$1…` placeholders.
#[derive(Debug, Clone, Default)]
pub(crate) struct Batch {
    stmts: Vec<Stmt>,
}

/// Rows of each query in a batch, by the index `Batch::query` returned.
pub(crate) struct BatchRows(Vec<Vec<AnyRow>>);

impl BatchRows {
    pub fn of(&self, index: usize) -> &[AnyRow] {
        self.0.get(index).map(Vec::as_slice).unwrap_or_default()
    }

    /// The rows of the statements from `at` on, re-indexed from 0 (the part of a combined
    /// batch that one unit of work appended).
    pub fn split_off(&mut self, at: usize) -> BatchRows {
        BatchRows(self.0.split_off(at.min(self.0.len())))
    }
}

impl Batch {
    pub fn new() -> Self {
        Batch::default()
    }

    pub fn is_empty(&self) -> bool {
        self.stmts.is_empty()
    }

    /// Appends `other`'s statements; returns the index its first statement got.
    pub fn append(&mut self, other: Batch) -> usize {
        let at = self.stmts.len();
        self.stmts.extend(other.stmts);
        at
    }

    /// A write.
    pub fn exec(&mut self, sql: impl Into<Cow<'static, str>>, args: Vec<Arg>) -> &mut Self {
        self.stmts.push(Stmt { sql: sql.into(), args, returns_rows: false, expect_rows: None });
        self
    }

    /// A write that must affect exactly `rows` rows, else the unit of work is retried.
    pub fn exec_expect(&mut self, sql: impl Into<Cow<'static, str>>, args: Vec<Arg>, rows: u64) -> &mut Self {
        self.stmts.push(Stmt { sql: sql.into(), args, returns_rows: false, expect_rows: Some(rows) });
        self
    }

    /// A `SELECT`; returns the index of its rows in the result.
    pub fn query(&mut self, sql: impl Into<Cow<'static, str>>, args: Vec<Arg>) -> usize {
        self.stmts.push(Stmt { sql: sql.into(), args, returns_rows: true, expect_rows: None });
        self.stmts.len() - 1
    }

    /// One SQLite script: placeholders renumbered, each query's rows tagged with its index.
    fn script(self) -> (String, AnyArguments) {
        let mut text = String::new();
        let mut args = AnyArguments::default();
        let mut offset = 0;
        for (i, stmt) in self.stmts.into_iter().enumerate() {
            let sql = renumber(&stmt.sql, offset);
            if stmt.returns_rows {
                text.push_str(&format!("SELECT {i} AS batch_stmt, q.* FROM ({sql}) AS q;\n"));
            } else {
                text.push_str(&sql);
                text.push_str(";\n");
            }
            offset += stmt.args.len();
            for a in stmt.args {
                bind(&mut args, a);
            }
        }
        (text, args)
    }
}

/// Shifts every `$n` placeholder in `sql` by `offset`.
fn renumber(sql: &str, offset: usize) -> String {
    if offset == 0 {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '$' {
            let mut digits = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            match digits.parse::<usize>() {
                Ok(n) => out.push_str(&(n + offset).to_string()),
                Err(_) => out.push_str(&digits),
            }
        }
    }
    out
}

impl Tx {
    /// Runs the batch; returns each query's rows.
    pub(crate) async fn run(&mut self, batch: Batch) -> Result<BatchRows> {
        run_on(&mut self.tx, self.backend, batch).await
    }
}

/// Runs `batch` on a connection: one script on SQLite, statement by statement with guards on
/// PostgreSQL.
pub(crate) async fn run_on(conn: &mut AnyConnection, backend: Backend, batch: Batch) -> Result<BatchRows> {
    let n = batch.stmts.len();
    let mut rows: Vec<Vec<AnyRow>> = vec![Vec::new(); n];
    match backend {
        Backend::Sqlite if n > 1 => {
            let (text, args) = batch.script();
            for row in sqlx::query_with(AssertSqlSafe(text), args).fetch_all(&mut *conn).await? {
                let index: i64 = row.try_get("batch_stmt").map_err(|e| StoreError::Corrupt(e.to_string()))?;
                if let Some(slot) = usize::try_from(index).ok().and_then(|i| rows.get_mut(i)) {
                    slot.push(row);
                }
            }
        }
        _ => {
            for (i, stmt) in batch.stmts.into_iter().enumerate() {
                let mut args = AnyArguments::default();
                for a in stmt.args {
                    bind(&mut args, a);
                }
                let query = sqlx::query_with(AssertSqlSafe(stmt.sql.into_owned()), args);
                if stmt.returns_rows {
                    rows[i] = query.fetch_all(&mut *conn).await?;
                } else {
                    let affected = query.execute(&mut *conn).await?.rows_affected();
                    if stmt.expect_rows.is_some_and(|want| want != affected) {
                        return Err(StoreError::Retry);
                    }
                }
            }
        }
    }
    Ok(BatchRows(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_past_earlier_statements() {
        assert_eq!(
            renumber("UPDATE t SET a = $1 WHERE b = $2 AND c = $10", 3),
            "UPDATE t SET a = $4 WHERE b = $5 AND c = $13"
        );
        assert_eq!(renumber("SELECT 1", 5), "SELECT 1");
    }

    #[test]
    fn scripts_tag_query_rows_and_keep_argument_order() {
        let mut b = Batch::new();
        b.exec("INSERT INTO t (a) VALUES ($1)", vec![Arg::from(1)]);
        let q = b.query("SELECT a FROM t WHERE a = $1", vec![Arg::from(2)]);
        assert_eq!(q, 1);
        let (text, _) = b.script();
        assert_eq!(
            text,
            "INSERT INTO t (a) VALUES ($1);\nSELECT 1 AS batch_stmt, q.* FROM (SELECT a FROM t WHERE a = $2) AS q;\n"
        );
    }
}
