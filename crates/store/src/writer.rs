//! The group-commit writer.
//!
//! Callers [`WriterHandle::submit`] their events (never blocking: a queue bounded in events
//! refuses at once when full) and await the [`CommitTicket`]. One task, the writer, waits
//! for the first job, takes whatever else is queued up to `batch_bookings_max` jobs (a job is
//! one request's write: a booking, a cancellation…) and `batch_events_max` events (natural
//! batching: no timer, so a lone write commits at once and batches grow by themselves under
//! load), commits them as one batch, and wakes every caller of the batch.
//!
//! A commit is never cancelled by dropping its future: it runs in a spawned task. Past
//! `commit_timeout`, or when the store says [`StoreError::InDoubt`], the batch is *in
//! doubt*: the writer ends it from outside ([`Store::abort_commit`]), waits for the task to
//! end, then reads the outcome back with [`Store::batch_committed`] (batch id *and* epoch), retrying with bounded
//! backoff until it gets an answer. Only then are callers told, so they only ever see
//! "committed" or "not written".
//!
//! Durability positions: `queued` is the id of the last batch taken from the queue,
//! `committed` the id of the last batch known durable; `committed <= queued` always, and
//! both only grow.
//!
//! Shutdown ([`WriterHandle::shutdown`], or dropping every handle): stop admitting (later
//! submits get [`SubmitError::Closed`]), drain what is queued in batches, exit.
//!
//! Health ([`WriterHandle::health`], [`WriterHandle::failed`]): a writer that was fenced (a
//! newer epoch took over) or whose task panicked can commit nothing more; the server watches
//! for it and stops instead of refusing every write for ever.

use crate::error::StoreError;
use crate::metrics as m;
use crate::store::Store;
use kataar_domain::limits::{
    BATCH_BOOKINGS_MAX, BATCH_EVENTS_MAX, COMMIT_TIMEOUT_MS, WRITER_QUEUE_EVENTS_MAX,
};
use kataar_domain::{BatchId, Event};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// First wait between read-back attempts of an in-doubt batch, in milliseconds.
pub const READBACK_BACKOFF_MIN_MS: u64 = 10;
/// Longest wait between read-back attempts, in milliseconds (the backoff doubles up to it).
pub const READBACK_BACKOFF_MAX_MS: u64 = 1_000;

/// The writer's bounds.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// Most jobs (one request's write each: a booking, a cancellation…) in one batch (default
    /// [`BATCH_BOOKINGS_MAX`]).
    pub batch_bookings_max: usize,
    /// Most events in one batch (default [`BATCH_EVENTS_MAX`]). A single submission larger
    /// than this is committed alone.
    pub batch_events_max: usize,
    /// Most events waiting (default [`WRITER_QUEUE_EVENTS_MAX`]); beyond it submits fail
    /// at once with [`SubmitError::QueueFull`].
    pub queue_events_max: usize,
    /// Deadline of one commit (default [`COMMIT_TIMEOUT_MS`]); past it the batch is in
    /// doubt and is resolved by read-back.
    pub commit_timeout: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            batch_bookings_max: BATCH_BOOKINGS_MAX,
            batch_events_max: BATCH_EVENTS_MAX,
            queue_events_max: WRITER_QUEUE_EVENTS_MAX,
            commit_timeout: Duration::from_millis(COMMIT_TIMEOUT_MS),
        }
    }
}

/// Why a submission was refused (nothing was queued).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum SubmitError {
    /// The queue holds `queue_events_max` events already.
    #[error("the store writer's queue is full")]
    QueueFull,
    /// The writer is shutting down or gone.
    #[error("the store writer is closed")]
    Closed,
}

/// Why a submitted batch was not committed. In both cases nothing of it was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum CommitError {
    /// The batch was not written (store error, constraint, or in doubt and read back as not
    /// committed): undo its in-memory effect.
    #[error("the batch was not committed")]
    Failed,
    /// Another writer holds a newer epoch: this process must stop writing.
    #[error("the store writer was fenced by a newer epoch")]
    Fenced,
}

/// The durability positions of a writer (batch ids).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterPositions {
    /// The last batch taken from the queue (0: none yet).
    pub queued: u64,
    /// The last batch committed (0: none yet). Never above `queued`.
    pub committed: u64,
}

/// Resolves when the submission's batch is committed (`Ok(batch id)`) or known not to be.
#[derive(Debug)]
#[must_use = "a ticket must be awaited to learn whether the events are durable"]
pub struct CommitTicket {
    rx: oneshot::Receiver<Result<BatchId, CommitError>>,
}

impl Future for CommitTicket {
    type Output = Result<BatchId, CommitError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The writer drops a reply only for a job it never took into a batch (the queue was
        // dropped at exit), so a closed channel means "not written".
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(CommitError::Failed)))
    }
}

struct Job {
    events: Vec<Event>,
    reply: oneshot::Sender<Result<BatchId, CommitError>>,
}

enum Msg {
    Job(Job),
    Shutdown,
}

struct Shared {
    queued_events: AtomicUsize,
    queue_events_max: usize,
    queued_batch: AtomicU64,
    committed_batch: AtomicU64,
    health: watch::Sender<WriterHealth>,
    on_batch: std::sync::OnceLock<BatchHook>,
}

/// What one batch came to, as told to [`WriterHandle::on_batch`]: once per batch, however
/// many jobs it carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Committed.
    Committed,
    /// Not committed because of the store (unreachable, timed out, in doubt and read back as
    /// not committed): a store fault.
    StoreFault,
    /// Refused by a constraint (one job's events conflict with the database): the store is
    /// fine; the batch is split so only the offending job is refused.
    Refused,
    /// Refused because a newer writer holds the epoch.
    Fenced,
}

type BatchHook = Box<dyn Fn(BatchOutcome) + Send + Sync>;

/// Whether the writer can still make anything durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriterHealth {
    /// Committing.
    Running,
    /// Another writer took a newer epoch: every later batch is refused. The process must
    /// stop (another server serves this database now).
    Fenced,
    /// The writer task panicked: nothing more will be committed.
    Panicked,
    /// Stopped after a shutdown (or every handle was dropped).
    Stopped,
}

impl WriterHealth {
    /// Why the writer can no longer commit, if it cannot and was not asked to stop.
    pub fn failure(self) -> Option<&'static str> {
        match self {
            WriterHealth::Fenced => Some("fenced by a newer epoch (another server took over)"),
            WriterHealth::Panicked => Some("ended by a panic"),
            WriterHealth::Running | WriterHealth::Stopped => None,
        }
    }
}

/// A cloneable way to submit events to the writer.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::UnboundedSender<Msg>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WriterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterHandle")
            .field("positions", &self.positions())
            .finish_non_exhaustive()
    }
}

impl WriterHandle {
    /// Queues `events` as one unit (they land in the same batch). Never blocks.
    pub fn submit(&self, events: Vec<Event>) -> Result<CommitTicket, SubmitError> {
        let n = events.len();
        let max = self.shared.queue_events_max;
        let mut current = self.shared.queued_events.load(Ordering::Relaxed);
        loop {
            if current.saturating_add(n) > max {
                metrics::counter!(m::COMMIT_FAILURES_TOTAL, "reason" => "queue_full").increment(1);
                return Err(SubmitError::QueueFull);
            }
            match self.shared.queued_events.compare_exchange_weak(
                current,
                current + n,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Job(Job { events, reply })).is_err() {
            self.shared.queued_events.fetch_sub(n, Ordering::AcqRel);
            return Err(SubmitError::Closed);
        }
        metrics::gauge!(m::QUEUE_EVENTS).set(to_f64(current + n));
        Ok(CommitTicket { rx })
    }

    /// Stops admitting; the writer commits what is queued and exits.
    pub fn shutdown(&self) {
        // A send error means the writer is gone already: nothing left to stop.
        let _ = self.tx.send(Msg::Shutdown);
    }

    /// Events waiting for the writer.
    pub fn queued_events(&self) -> usize {
        self.shared.queued_events.load(Ordering::Acquire)
    }

    /// Calls `hook` with the outcome of every batch from now on (e.g. to feed a circuit
    /// breaker once per batch rather than once per job). Only the first hook set is kept;
    /// `false` if one was set already.
    pub fn on_batch(&self, hook: impl Fn(BatchOutcome) + Send + Sync + 'static) -> bool {
        self.shared.on_batch.set(Box::new(hook)).is_ok()
    }

    /// The writer's health now.
    pub fn health(&self) -> WriterHealth {
        *self.shared.health.borrow()
    }

    /// Completes when the writer can no longer commit for a reason other than a shutdown
    /// (fenced, or its task panicked), with that reason. Never completes otherwise.
    pub async fn failed(&self) -> &'static str {
        let mut rx = self.shared.health.subscribe();
        loop {
            if let Some(reason) = rx.borrow_and_update().failure() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// The durability positions.
    pub fn positions(&self) -> WriterPositions {
        let committed = self.shared.committed_batch.load(Ordering::Acquire);
        let queued = self.shared.queued_batch.load(Ordering::Acquire);
        WriterPositions { queued, committed }
    }
}

fn to_f64(n: usize) -> f64 {
    u32::try_from(n).map(f64::from).unwrap_or(f64::MAX)
}

/// How one batch ended.
enum Outcome {
    Committed,
    Failed(&'static str),
    Fenced,
}

/// The writer task.
pub struct Writer {
    store: Arc<dyn Store>,
    cfg: WriterConfig,
    epoch: u64,
    next_batch_id: u64,
    rx: mpsc::UnboundedReceiver<Msg>,
    shared: Arc<Shared>,
    fenced: bool,
}

impl Writer {
    /// Starts the writer on the current tokio runtime. `epoch` comes from
    /// [`Store::acquire_epoch`]; `first_batch_id` must be above every committed batch id
    /// (`snapshot.batch_id_max + 1`).
    pub fn spawn(
        store: Arc<dyn Store>,
        cfg: WriterConfig,
        epoch: u64,
        first_batch_id: BatchId,
    ) -> (WriterHandle, JoinHandle<()>) {
        assert!(
            cfg.batch_events_max >= 1,
            "batch_events_max must be at least 1"
        );
        assert!(
            cfg.batch_bookings_max >= 1,
            "batch_bookings_max must be at least 1"
        );
        assert!(first_batch_id.0 >= 1, "batch ids start at 1");
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queued_events: AtomicUsize::new(0),
            queue_events_max: cfg.queue_events_max,
            queued_batch: AtomicU64::new(first_batch_id.0 - 1),
            committed_batch: AtomicU64::new(first_batch_id.0 - 1),
            health: watch::Sender::new(WriterHealth::Running),
            on_batch: std::sync::OnceLock::new(),
        });
        let writer = Writer {
            store,
            cfg,
            epoch,
            next_batch_id: first_batch_id.0,
            rx,
            shared: Arc::clone(&shared),
            fenced: false,
        };
        let task = tokio::spawn(writer.run());
        let watched = Arc::clone(&shared);
        let join = tokio::spawn(async move {
            let ended = match task.await {
                Ok(()) => WriterHealth::Stopped,
                Err(e) => {
                    tracing::error!(error = %e, "the store writer task failed");
                    WriterHealth::Panicked
                }
            };
            watched.health.send_modify(|h| {
                if *h == WriterHealth::Running {
                    *h = ended;
                }
            });
        });
        (WriterHandle { tx, shared }, join)
    }

    async fn next_job(&mut self) -> Option<Job> {
        loop {
            match self.rx.recv().await? {
                Msg::Job(job) => return Some(job),
                // Stop admitting; recv still yields what is buffered, then None.
                Msg::Shutdown => self.rx.close(),
            }
        }
    }

    async fn run(mut self) {
        let mut carry: Option<Job> = None;
        loop {
            let first = match carry.take() {
                Some(job) => job,
                None => match self.next_job().await {
                    Some(job) => job,
                    None => break,
                },
            };
            let mut events_n = first.events.len();
            let mut jobs = vec![first];
            while events_n < self.cfg.batch_events_max && jobs.len() < self.cfg.batch_bookings_max {
                match self.rx.try_recv() {
                    Ok(Msg::Job(job)) => {
                        if events_n + job.events.len() > self.cfg.batch_events_max {
                            carry = Some(job);
                            break;
                        }
                        events_n += job.events.len();
                        jobs.push(job);
                    }
                    Ok(Msg::Shutdown) => self.rx.close(),
                    Err(_) => break,
                }
            }
            let left = self
                .shared
                .queued_events
                .fetch_sub(events_n, Ordering::AcqRel)
                - events_n;
            metrics::gauge!(m::QUEUE_EVENTS).set(to_f64(left));
            self.commit_jobs(jobs, events_n).await;
        }
        tracing::info!(
            committed = self.shared.committed_batch.load(Ordering::Acquire),
            "store writer stopped"
        );
    }

    /// Commits the jobs taken from the queue. When a batch of several jobs is refused by a
    /// constraint (one job's events conflict with the database), its halves are committed
    /// again as batches of their own, down to single jobs, so only the offending job is
    /// refused and its neighbours commit.
    async fn commit_jobs(&mut self, jobs: Vec<Job>, _events_n: usize) {
        let mut groups = vec![jobs];
        while let Some(mut jobs) = groups.pop() {
            let lens: Vec<usize> = jobs.iter().map(|j| j.events.len()).collect();
            let events_n: usize = lens.iter().sum();
            let mut events = Vec::with_capacity(events_n);
            for job in &mut jobs {
                events.append(&mut job.events);
            }
            let (reply, returned) = self.commit_batch(events, events_n, jobs.len()).await;
            if let (Err(CommitError::Failed), Some(mut events), true) =
                (reply, returned, jobs.len() > 1)
            {
                for (job, len) in jobs.iter_mut().zip(&lens).rev() {
                    job.events = events.split_off(events.len() - len);
                }
                metrics::counter!(m::BATCH_SPLITS_TOTAL).increment(1);
                let right = jobs.split_off(jobs.len() / 2);
                // The left half commits first: the jobs keep their queue order.
                groups.push(right);
                groups.push(jobs);
                continue;
            }
            for job in jobs {
                // A caller that stopped waiting does not matter to the others.
                let _ = job.reply.send(reply);
            }
        }
    }

    /// Commits `events` as the next batch. Returns what its callers are told and, when the
    /// batch was refused by a constraint, the events (so that its jobs can be retried apart).
    async fn commit_batch(
        &mut self,
        events: Vec<Event>,
        events_n: usize,
        jobs_n: usize,
    ) -> (Result<BatchId, CommitError>, Option<Vec<Event>>) {
        let batch_id = BatchId(self.next_batch_id);
        self.next_batch_id += 1;
        let committed_before = self.shared.committed_batch.load(Ordering::Acquire);
        let queued_before = self.shared.queued_batch.swap(batch_id.0, Ordering::AcqRel);
        assert!(
            committed_before <= queued_before && queued_before < batch_id.0,
            "durability positions out of order"
        );

        let (outcome, returned) = if self.fenced {
            (Outcome::Fenced, None)
        } else {
            let started = Instant::now();
            let result = self.commit_resolved(batch_id, events).await;
            metrics::histogram!(m::COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
            result
        };

        let reply = match outcome {
            Outcome::Committed => {
                let previous = self
                    .shared
                    .committed_batch
                    .swap(batch_id.0, Ordering::AcqRel);
                assert!(
                    previous < batch_id.0
                        && batch_id.0 <= self.shared.queued_batch.load(Ordering::Acquire),
                    "durability positions out of order"
                );
                metrics::histogram!(m::BATCH_EVENTS).record(to_f64(events_n));
                metrics::histogram!(m::BATCH_BOOKINGS).record(to_f64(jobs_n));
                metrics::counter!(m::EVENTS_COMMITTED_TOTAL).increment(events_n as u64);
                metrics::counter!(m::BATCHES_COMMITTED_TOTAL).increment(1);
                Ok(batch_id)
            }
            Outcome::Failed(reason) => {
                metrics::counter!(m::COMMIT_FAILURES_TOTAL, "reason" => reason).increment(1);
                tracing::warn!(batch_id = batch_id.0, reason, "store batch not committed");
                Err(CommitError::Failed)
            }
            Outcome::Fenced => {
                if !self.fenced {
                    tracing::error!(epoch = self.epoch, "store writer fenced by a newer epoch");
                    self.shared.health.send_replace(WriterHealth::Fenced);
                }
                self.fenced = true;
                metrics::counter!(m::COMMIT_FAILURES_TOTAL, "reason" => "fenced").increment(1);
                Err(CommitError::Fenced)
            }
        };
        let told = match (reply, &returned) {
            (Ok(_), _) => BatchOutcome::Committed,
            (Err(CommitError::Fenced), _) => BatchOutcome::Fenced,
            (Err(CommitError::Failed), Some(_)) => BatchOutcome::Refused,
            (Err(CommitError::Failed), None) => BatchOutcome::StoreFault,
        };
        if let Some(hook) = self.shared.on_batch.get() {
            hook(told);
        }
        (reply, returned)
    }

    /// Commits one batch and returns its known outcome, resolving in-doubt commits; with a
    /// constraint refusal, also the events back.
    async fn commit_resolved(
        &self,
        batch_id: BatchId,
        events: Vec<Event>,
    ) -> (Outcome, Option<Vec<Event>>) {
        let store = Arc::clone(&self.store);
        let epoch = self.epoch;
        let mut task = tokio::spawn(async move {
            let result = store.commit(batch_id, epoch, &events).await;
            (result, events)
        });
        let timeout = self.cfg.commit_timeout;
        let first = tokio::time::timeout(timeout, &mut task).await;
        let doubt = match first {
            Ok(Ok((result, events))) => {
                let refused = matches!(result, Err(StoreError::Constraint(_)));
                match classify(result) {
                    Some(outcome) => return (outcome, refused.then_some(events)),
                    None => "in_doubt",
                }
            }
            Ok(Err(_panic)) => "panic",
            Err(_elapsed) => {
                tracing::warn!(batch_id = batch_id.0, "store commit past its deadline");
                loop {
                    if let Err(e) = self.store.abort_commit(batch_id).await {
                        tracing::warn!(batch_id = batch_id.0, error = %e, "abort of commit failed");
                    }
                    match tokio::time::timeout(timeout, &mut task).await {
                        // Ended on its own right before the abort: its answer is final.
                        Ok(Ok((Ok(()), _))) => return (Outcome::Committed, None),
                        Ok(Ok((Err(StoreError::Fenced), _))) => return (Outcome::Fenced, None),
                        // Any error after an abort may hide a COMMIT that went through.
                        Ok(_) => break,
                        Err(_) => continue,
                    }
                }
                "timeout"
            }
        };
        // The transaction must be over on the server before its outcome is read.
        self.abort_until_done(batch_id).await;
        (self.read_back(batch_id, doubt).await, None)
    }

    async fn abort_until_done(&self, batch_id: BatchId) {
        let mut backoff = Duration::from_millis(READBACK_BACKOFF_MIN_MS);
        let backoff_max = Duration::from_millis(READBACK_BACKOFF_MAX_MS);
        while let Err(e) = self.store.abort_commit(batch_id).await {
            tracing::warn!(batch_id = batch_id.0, error = %e, "abort of commit failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(backoff_max);
        }
    }

    async fn read_back(&self, batch_id: BatchId, doubt: &'static str) -> Outcome {
        let mut backoff = Duration::from_millis(READBACK_BACKOFF_MIN_MS);
        let backoff_max = Duration::from_millis(READBACK_BACKOFF_MAX_MS);
        loop {
            match self.store.batch_committed(batch_id, self.epoch).await {
                Ok(true) => {
                    metrics::counter!(m::IN_DOUBT_TOTAL, "outcome" => "committed").increment(1);
                    tracing::warn!(batch_id = batch_id.0, doubt, "in-doubt batch was committed");
                    return Outcome::Committed;
                }
                Ok(false) => {
                    metrics::counter!(m::IN_DOUBT_TOTAL, "outcome" => "failed").increment(1);
                    tracing::warn!(
                        batch_id = batch_id.0,
                        doubt,
                        "in-doubt batch was not committed"
                    );
                    return Outcome::Failed(doubt);
                }
                Err(e) => {
                    tracing::warn!(batch_id = batch_id.0, error = %e, "read-back failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(backoff_max);
                }
            }
        }
    }
}

/// The outcome of a commit that ended on its own, or `None` when it is in doubt.
fn classify(result: Result<(), StoreError>) -> Option<Outcome> {
    match result {
        Ok(()) => Some(Outcome::Committed),
        Err(StoreError::Fenced) => Some(Outcome::Fenced),
        Err(StoreError::InDoubt) => None,
        Err(e) => Some(Outcome::Failed(e.reason())),
    }
}
