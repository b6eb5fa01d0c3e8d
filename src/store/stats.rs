//! Manager numbers, computed in SQL on both backends. Figures about leads are over the leads
//! created in `[from, to)` (a cohort: how did last month's leads fare); load, unassigned,
//! overdue and stale are as of now. Percentiles interpolate linearly between ranks (as
//! PostgreSQL's `percentile_cont`), written with window functions both backends share.

use std::collections::BTreeMap;

use super::rows::{Col, Sql};
use super::{Result, Store};

/// What to summarise.
#[derive(Debug, Clone)]
pub struct SummaryQuery {
    pub from: i64,
    pub to: i64,
    pub team: Option<String>,
    pub bucket: Bucket,
    pub now: i64,
    /// Open leads quiet since before this are stale (`None`: staleness is off).
    pub quiet_since: Option<i64>,
}

/// The width of a `series` point. Weeks start on Monday, days and weeks at 00:00 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Day,
    Week,
}

impl Bucket {
    pub const DAY_MS: i64 = 86_400_000;

    /// The day number (since 1970-01-01) a bucket starting at that day covers, as SQL.
    fn sql(self) -> &'static str {
        match self {
            Bucket::Day => "(l.created_at / 86400000)",
            // 1970-01-01 was a Thursday: day d's Monday is d - (d + 3) mod 7.
            Bucket::Week => "(l.created_at / 86400000 - (l.created_at / 86400000 + 3) % 7)",
        }
    }

    /// The first day of the bucket holding day `day`.
    pub fn start_day(self, day: i64) -> i64 {
        match self {
            Bucket::Day => day,
            Bucket::Week => day - (day + 3).rem_euclid(7),
        }
    }

    pub fn days(self) -> i64 {
        match self {
            Bucket::Day => 1,
            Bucket::Week => 7,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub total: i64,
    pub by_channel: BTreeMap<String, i64>,
    pub by_source: BTreeMap<String, i64>,
    /// Leads per bucket, keyed by the bucket's first day (days since 1970-01-01).
    pub series: BTreeMap<i64, SeriesPoint>,
    /// Leads by their status now.
    pub by_status: BTreeMap<String, i64>,
    /// Leads that reached each stage (a later stage counts as having passed the earlier ones).
    pub reached: BTreeMap<String, i64>,
    pub lost_reasons: BTreeMap<String, i64>,
    pub first_response: Option<Percentiles>,
    pub first_response_by_rep: BTreeMap<String, Percentiles>,
    pub first_response_by_channel: BTreeMap<String, Percentiles>,
    pub reps: Vec<RepStats>,
    pub unassigned: i64,
    pub overdue: i64,
    pub stale: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesPoint {
    pub total: i64,
    pub by_channel: BTreeMap<String, i64>,
    pub by_source: BTreeMap<String, i64>,
}

/// Milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    pub count: i64,
    pub mean: f64,
    pub median: f64,
    pub p90: f64,
}

#[derive(Debug, Clone, Default)]
pub struct RepStats {
    pub id: String,
    pub name: String,
    /// Open leads owned now (of the team, with a team filter).
    pub open: i64,
    pub won: i64,
    pub lost: i64,
}

/// Where a lead came from: its UTM source (a Telegram deep link sets one), else the form,
/// mailbox or bot, else its channel.
const SOURCE: &str = "COALESCE(l.utm_source, 'form:' || l.source_form, 'mailbox:' || l.source_mailbox, \
     'bot:' || l.source_bot, l.channel)";

/// Funnel stages in order; `lost` is apart (a lead is lost from any stage).
const STAGES: [&str; 6] = ["new", "qualification", "proposal_sent", "negotiation", "waiting_response", "won"];

fn stage_rank(column: &str) -> String {
    let arms: String = STAGES.iter().enumerate().map(|(i, s)| format!(" WHEN '{s}' THEN {i}")).collect();
    format!("CASE {column}{arms} ELSE 0 END")
}

/// `WHERE` for leads created in the window (of the team), merged duplicates left out.
fn window(q: &mut Sql, s: &SummaryQuery) {
    q.push(" WHERE l.merged_into IS NULL AND l.created_at >= ").bind(s.from).push(" AND l.created_at < ").bind(s.to);
    team(q, s);
}

fn team(q: &mut Sql, s: &SummaryQuery) {
    if let Some(team) = &s.team {
        q.push(" AND l.team_id = ").bind(team.clone());
    }
}

impl Store {
    /// The queries are independent: they run at once, each on its own pooled connection.
    pub async fn summary(&self, s: &SummaryQuery) -> Result<Summary> {
        let (volume, by_status, lost_reasons, reached, mut overall, by_rep, by_channel, reps, now) = tokio::try_join!(
            self.volume(s),
            self.status_counts(s),
            self.lost_reason_counts(s),
            self.reached(s),
            self.first_response(s, "'all'"),
            self.first_response(s, "l.owner_id"),
            self.first_response(s, "l.channel"),
            self.rep_stats(s),
            self.current_counts(s),
        )?;
        Ok(Summary {
            by_status,
            lost_reasons,
            reached,
            first_response: overall.remove("all"),
            first_response_by_rep: by_rep,
            first_response_by_channel: by_channel,
            reps,
            unassigned: now.0,
            overdue: now.1,
            stale: now.2,
            ..volume
        })
    }

    /// Totals by channel and source, and per bucket.
    async fn volume(&self, s: &SummaryQuery) -> Result<Summary> {
        let mut out = Summary::default();
        let mut q = Sql::new(&format!(
            "SELECT {} AS bucket, l.channel AS channel, {SOURCE} AS source, COUNT(*) AS n FROM leads l",
            s.bucket.sql()
        ));
        window(&mut q, s);
        q.push(" GROUP BY 1, 2, 3");
        for r in q.build().fetch_all(self.reader()).await? {
            let (bucket, channel, source, n): (i64, String, String, i64) =
                (r.col("bucket")?, r.col("channel")?, r.col("source")?, r.col("n")?);
            out.total += n;
            *out.by_channel.entry(channel.clone()).or_default() += n;
            *out.by_source.entry(source.clone()).or_default() += n;
            let point = out.series.entry(bucket).or_default();
            point.total += n;
            *point.by_channel.entry(channel).or_default() += n;
            *point.by_source.entry(source).or_default() += n;
        }
        Ok(out)
    }

    async fn status_counts(&self, s: &SummaryQuery) -> Result<BTreeMap<String, i64>> {
        let mut q = Sql::new("SELECT l.status AS k, COUNT(*) AS n FROM leads l");
        window(&mut q, s);
        q.push(" GROUP BY l.status");
        counts(q, self.reader()).await
    }

    async fn lost_reason_counts(&self, s: &SummaryQuery) -> Result<BTreeMap<String, i64>> {
        let mut q = Sql::new("SELECT COALESCE(l.lost_reason, 'unknown') AS k, COUNT(*) AS n FROM leads l");
        window(&mut q, s);
        q.push(" AND l.status = 'lost' GROUP BY 1");
        counts(q, self.reader()).await
    }

    /// Open leads now: `(unassigned, overdue, stale)`.
    async fn current_counts(&self, s: &SummaryQuery) -> Result<(i64, i64, i64)> {
        let mut q = Sql::new("SELECT ");
        q.push("SUM(CASE WHEN l.owner_id IS NULL THEN 1 ELSE 0 END) AS unassigned, ");
        q.push("SUM(CASE WHEN l.next_action_at < ").bind(s.now).push(" THEN 1 ELSE 0 END) AS overdue, ");
        q.push("SUM(CASE WHEN l.last_activity_at <= ").bind(s.quiet_since.unwrap_or(i64::MIN));
        q.push(" THEN 1 ELSE 0 END) AS stale FROM leads l WHERE l.closed_at IS NULL");
        team(&mut q, s);
        let row = q.build().fetch_one(self.reader()).await?;
        let n = |c: &str| -> Result<i64> { Ok(row.col::<Option<i64>>(c)?.unwrap_or(0)) };
        let stale = if s.quiet_since.is_some() { n("stale")? } else { 0 };
        Ok((n("unassigned")?, n("overdue")?, stale))
    }

    /// For each stage, the leads whose furthest stage (now or in their history) is at least it;
    /// `lost`: the leads that were ever lost.
    async fn reached(&self, s: &SummaryQuery) -> Result<BTreeMap<String, i64>> {
        let mut sums: Vec<String> =
            (0..STAGES.len()).map(|i| format!("SUM(CASE WHEN stage >= {i} THEN 1 ELSE 0 END) AS s{i}")).collect();
        sums.push("SUM(lost) AS lost".into());
        let mut q = Sql::new(&format!("SELECT {} FROM (", sums.join(", ")));
        q.push("SELECT x.lead_id, MAX(x.stage) AS stage, MAX(x.lost) AS lost FROM (");
        q.push(&format!("SELECT l.id AS lead_id, {} AS stage, ", stage_rank("l.status")));
        q.push("CASE WHEN l.status = 'lost' THEN 1 ELSE 0 END AS lost FROM leads l");
        window(&mut q, s);
        q.push(&format!(" UNION ALL SELECT c.lead_id, {} AS stage, ", stage_rank("c.to_status")));
        q.push("CASE WHEN c.to_status = 'lost' THEN 1 ELSE 0 END AS lost ");
        q.push("FROM status_changes c JOIN leads l ON l.id = c.lead_id");
        window(&mut q, s);
        q.push(") x GROUP BY x.lead_id) per_lead");
        let row = q.build().fetch_one(self.reader()).await?;
        let mut reached = BTreeMap::new();
        for (i, stage) in STAGES.iter().enumerate() {
            reached.insert((*stage).to_owned(), row.col::<Option<i64>>(&format!("s{i}"))?.unwrap_or(0));
        }
        reached.insert("lost".to_owned(), row.col::<Option<i64>>("lost")?.unwrap_or(0));
        Ok(reached)
    }

    /// First-response time (creation → first outbound touch) per `group` (an SQL expression).
    async fn first_response(&self, s: &SummaryQuery, group: &str) -> Result<BTreeMap<String, Percentiles>> {
        let mut q = Sql::new(&format!(
            "SELECT g, COUNT(*) AS n, CAST(AVG(v) AS DOUBLE PRECISION) AS mean, {}, {} FROM (\
             SELECT g, v, ROW_NUMBER() OVER (PARTITION BY g ORDER BY v) - 1 AS i, \
             COUNT(*) OVER (PARTITION BY g) AS c FROM (\
             SELECT {group} AS g, l.first_response_at - l.created_at AS v FROM leads l",
            interpolated(50, "median"),
            interpolated(90, "p90")
        ));
        window(&mut q, s);
        q.push(&format!(" AND l.first_response_at IS NOT NULL AND {group} IS NOT NULL) fr) ranked GROUP BY g"));
        let rows = q.build().fetch_all(self.reader()).await?;
        rows.iter()
            .map(|r| {
                let p = Percentiles {
                    count: r.col("n")?,
                    mean: r.col::<Option<f64>>("mean")?.unwrap_or(0.0),
                    median: r.col::<Option<f64>>("median")?.unwrap_or(0.0),
                    p90: r.col::<Option<f64>>("p90")?.unwrap_or(0.0),
                };
                Ok((r.col::<String>("g")?, p))
            })
            .collect()
    }

    /// Every rep (of the team, with a team filter): open leads now; won and lost of the window.
    async fn rep_stats(&self, s: &SummaryQuery) -> Result<Vec<RepStats>> {
        let mut q = Sql::new(
            "SELECT r.id, r.name, \
             (SELECT COUNT(*) FROM leads l WHERE l.owner_id = r.id AND l.closed_at IS NULL",
        );
        team(&mut q, s);
        q.push(") AS open, COALESCE(w.won, 0) AS won, COALESCE(w.lost, 0) AS lost FROM reps r LEFT JOIN (");
        q.push(
            "SELECT l.owner_id, SUM(CASE WHEN l.status = 'won' THEN 1 ELSE 0 END) AS won, \
             SUM(CASE WHEN l.status = 'lost' THEN 1 ELSE 0 END) AS lost FROM leads l",
        );
        window(&mut q, s);
        q.push(" GROUP BY l.owner_id) w ON w.owner_id = r.id");
        if let Some(team) = &s.team {
            q.push(" WHERE r.id IN (SELECT rep_id FROM team_members WHERE team_id = ").bind(team.clone());
            q.push(") OR w.owner_id IS NOT NULL");
        }
        q.push(" ORDER BY r.id");
        let rows = q.build().fetch_all(self.reader()).await?;
        rows.iter()
            .map(|r| {
                Ok(RepStats {
                    id: r.col("id")?,
                    name: r.col("name")?,
                    open: r.col("open")?,
                    won: r.col("won")?,
                    lost: r.col("lost")?,
                })
            })
            .collect()
    }
}

impl Store {
    /// Benchmark data: `n` leads (each with its own contact) created `step` ms apart from
    /// `start`, spread over three channels, four sources, every status and the reps anna, ben
    /// and chen of team `sales`, most of them answered, with their status changes.
    pub async fn seed_leads(&self, n: i64, start: i64, step: i64) -> Result<()> {
        const SEQ: &str = "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < $1)";
        let status = "CASE n % 7 WHEN 0 THEN 'new' WHEN 1 THEN 'qualification' WHEN 2 THEN 'proposal_sent' \
             WHEN 3 THEN 'negotiation' WHEN 4 THEN 'waiting_response' WHEN 5 THEN 'won' ELSE 'lost' END";
        let created = "($2 + n * $3)";
        let statements = [
            format!(
                "INSERT INTO contacts (id, name, created_at, updated_at) {SEQ} \
                 SELECT 'seedlead-' || n, 'Seeded lead', {created}, {created} FROM seq"
            ),
            format!(
                "INSERT INTO leads (id, contact_id, channel, utm_source, status, lost_reason, team_id, owner_id, \
                 assigned_at, first_response_at, next_action_at, last_activity_at, closed_at, created_at, updated_at) \
                 {SEQ} SELECT 'seedlead-' || n, 'seedlead-' || n, \
                 CASE n % 3 WHEN 0 THEN 'webform' WHEN 1 THEN 'email' ELSE 'telegram' END, \
                 CASE n % 4 WHEN 0 THEN 'google' WHEN 1 THEN 'yandex' WHEN 2 THEN 'facebook' ELSE NULL END, \
                 {status}, CASE n % 7 WHEN 6 THEN 'too expensive' ELSE NULL END, 'sales', \
                 CASE n % 3 WHEN 0 THEN 'anna' WHEN 1 THEN 'ben' ELSE 'chen' END, {created}, \
                 CASE WHEN n % 5 = 0 THEN NULL ELSE {created} + (n % 600) * 1000 END, \
                 CASE WHEN n % 7 BETWEEN 1 AND 4 THEN {created} + 86400000 ELSE NULL END, {created}, \
                 CASE WHEN n % 7 >= 5 THEN {created} + 3600000 ELSE NULL END, {created}, {created} FROM seq"
            ),
            format!(
                "INSERT INTO status_changes (id, lead_id, from_status, to_status, actor, at) {SEQ} \
                 SELECT 'seedlead-' || n, 'seedlead-' || n, 'new', {status}, 'bench', {created} + 60000 \
                 FROM seq WHERE n % 7 <> 0"
            ),
        ];
        let mut tx = self.begin().await?;
        for sql in statements {
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(n).bind(start).bind(step).execute(&mut *tx.tx).await?;
        }
        tx.commit().await
    }
}

/// One lead as the CSV export lists it.
#[derive(Debug, Clone)]
pub struct ExportRow {
    pub id: String,
    pub created_at: i64,
    pub channel: String,
    pub source: String,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub form: Option<String>,
    pub mailbox: Option<String>,
    pub team: Option<String>,
    pub owner: Option<String>,
    pub status: String,
    pub lost_reason: Option<String>,
    pub assigned_at: Option<i64>,
    pub first_response_at: Option<i64>,
    pub closed_at: Option<i64>,
}

/// Most rows one export returns; a narrower range gets the rest.
pub const EXPORT_LIMIT: i64 = 200_000;

impl Store {
    /// The leads behind `summary`, oldest first.
    pub async fn export_leads(&self, s: &SummaryQuery) -> Result<Vec<ExportRow>> {
        let mut q = Sql::new(&format!(
            "SELECT l.id, l.created_at, l.channel, {SOURCE} AS source, l.utm_source, l.utm_medium, l.utm_campaign, \
             l.source_form, l.source_mailbox, l.team_id, l.owner_id, l.status, l.lost_reason, l.assigned_at, \
             l.first_response_at, l.closed_at FROM leads l"
        ));
        window(&mut q, s);
        q.push(" ORDER BY l.created_at, l.id LIMIT ").bind(EXPORT_LIMIT);
        let rows = q.build().fetch_all(self.reader()).await?;
        rows.iter()
            .map(|r| {
                Ok(ExportRow {
                    id: r.col("id")?,
                    created_at: r.col("created_at")?,
                    channel: r.col("channel")?,
                    source: r.col("source")?,
                    utm_source: r.col("utm_source")?,
                    utm_medium: r.col("utm_medium")?,
                    utm_campaign: r.col("utm_campaign")?,
                    form: r.col("source_form")?,
                    mailbox: r.col("source_mailbox")?,
                    team: r.col("team_id")?,
                    owner: r.col("owner_id")?,
                    status: r.col("status")?,
                    lost_reason: r.col("lost_reason")?,
                    assigned_at: r.col("assigned_at")?,
                    first_response_at: r.col("first_response_at")?,
                    closed_at: r.col("closed_at")?,
                })
            })
            .collect()
    }
}

/// The `pct`th percentile of `v` over rows numbered `i` (from 0) of `c`: the two neighbouring
/// ranks, weighted by the fraction between them, in integer arithmetic both backends share.
fn interpolated(pct: i64, name: &str) -> String {
    let pos = format!("((c - 1) * {pct})");
    format!(
        "CAST(SUM(CASE WHEN i = {pos} / 100 THEN v * (1.0 - ({pos} % 100) / 100.0) \
         WHEN i = {pos} / 100 + 1 THEN v * (({pos} % 100) / 100.0) ELSE 0 END) AS DOUBLE PRECISION) AS {name}"
    )
}

async fn counts(q: Sql, db: &sqlx::AnyPool) -> Result<BTreeMap<String, i64>> {
    let rows = q.build().fetch_all(db).await?;
    rows.iter().map(|r| Ok((r.col::<String>("k")?, r.col::<i64>("n")?))).collect()
}
