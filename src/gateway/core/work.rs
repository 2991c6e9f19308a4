//! One unit of work on an interaction (docs/architecture.md#the-unit-of-work): load the interaction and
//! its subject in one round trip, let the use case decide on plain values,
//! write back what the decision touched, and commit it atomically — all of
//! it again, on fresh data, after a concurrent write. Every use case that
//! changes an existing interaction goes through [`Core::transact`], so
//! versions, TTLs and indexes are handled here, once.
use futures::future::BoxFuture;
use tracing::Instrument;
use uuid::Uuid;

use super::outbox::{Notice, OutboxItem, Recorded, Task};
use super::record_locks::{Place, Standing};
use super::records::{
    interaction_ops, recognition_ops, remembered_of, write_interaction, write_subject, Bookkeeping,
    Loaded, Pair,
};
use super::view::SubjectView;
use super::writes::{DueEntry, Write, Writes};
use super::{Core, InteractionView};
use crate::config::{Settings, Team};
use crate::domain::audit::{Acting, Action, Draft, Target};
use crate::domain::interaction::InteractionRecord;
use crate::domain::origins::Failure;
use crate::domain::recognition::Recognition;
use crate::domain::subject::Standing as SubjectStanding;
use crate::domain::subject::{FailureOutcome, SubjectRecord};
use crate::error::{Error, Result};
use crate::events::types::{Plain, SubjectChange};
use crate::events::{EventData, EventType, Whom};
use crate::store::{keys, Backoff, Commit, Op};
use crate::time::Timestamp;

/// What a use case decides on: copies of the records as read, to change.
pub struct Work<'a> {
    /// The settings of the interaction's channel.
    pub settings: &'a Settings,
    pub rec: InteractionRecord,
    subject: SubjectRecord,
    subject_used: bool,
    /// What the conversation remembers, as read (`None`: its channel
    /// remembers nothing), and as this decision leaves it.
    recognition: Option<Loaded<Recognition>>,
    recognized: Option<Recognition>,
    /// The remembered customer's subject, as read (see `Pair`).
    remembered: Option<Loaded<SubjectRecord>>,
    announcement: bool,
    first: Vec<Op>,
    also: Vec<Op>,
    claims: Vec<Op>,
    /// A claim of an earlier try of this decision found its key taken.
    taken: bool,
    /// Its events, to emit with the commit; their `data` is built from
    /// the records as committed.
    events: Vec<EventData>,
    notices: Vec<Notice>,
    /// Its audit entries, chained into the commit (`core/trail`).
    audits: Vec<Draft>,
}

impl<'a> Work<'a> {
    /// A decision on `pair`, under `settings`; `taken`: a claim of an
    /// earlier try found its key taken.
    fn new(settings: &'a Settings, pair: &Pair, taken: bool) -> Result<Self> {
        Ok(Work {
            settings,
            rec: pair.rec()?.clone(),
            subject: pair.subject_or_new()?,
            subject_used: false,
            recognized: pair.recognition.as_ref().and_then(|r| r.value.clone()),
            recognition: pair.recognition.clone(),
            remembered: pair.remembered.clone(),
            announcement: false,
            first: Vec::new(),
            also: Vec::new(),
            claims: Vec::new(),
            taken,
            events: Vec::new(),
            notices: Vec::new(),
            audits: Vec::new(),
        })
    }

    /// Whether the decision has anything to write, the interaction having
    /// been `read`.
    fn changed(&self, read: &InteractionRecord) -> bool {
        self.rec != *read
            || self.recognition_changed()
            || !self.also.is_empty()
            || !self.claims.is_empty()
            || !self.events.is_empty()
            || !self.notices.is_empty()
            || !self.audits.is_empty()
    }

    /// The interaction as the decision leaves it, as callers see it.
    fn view(&self, team: &Team, now: Timestamp) -> InteractionView {
        let recognized = self.recognized.as_ref();
        InteractionView::build_recognized(
            &self.rec,
            Some(&self.subject),
            recognized,
            remembered_of(self.remembered.as_ref(), &team.keyspace, recognized),
            self.settings,
            now,
        )
        .in_conversation(team.conversation_kind(&self.rec))
    }
}

impl Work<'_> {
    /// The subject (a fresh one if it was never seen), for a decision that
    /// depends on it or changes it. The commit then writes it back — or, if
    /// unchanged, checks that nobody else did — so a concurrent lockout
    /// cannot slip past the decision.
    pub fn subject(&mut self) -> &mut SubjectRecord {
        self.subject_used = true;
        &mut self.subject
    }

    /// The interaction and its subject together, for a domain decision that
    /// changes both (the subject is then written back, as with
    /// [`Self::subject`]).
    pub fn records(&mut self) -> (&mut InteractionRecord, &mut SubjectRecord) {
        self.subject_used = true;
        (&mut self.rec, &mut self.subject)
    }

    /// What the conversation remembers, as this decision leaves it.
    pub fn recognized(&self) -> Option<&Recognition> {
        self.recognized.as_ref()
    }

    /// The conversation is no longer recognized (`/forget`, a logout, a
    /// ban).
    pub fn forget_recognition(&mut self) {
        self.recognized = None;
    }

    /// Whether the decision changed what the conversation remembers.
    fn recognition_changed(&self) -> bool {
        self.recognition
            .as_ref()
            .is_some_and(|read| read.value != self.recognized)
    }

    /// A claim made by an earlier try of this decision found its key
    /// taken (by another request, or by a concurrent twin whose write the
    /// fresh records now show).
    pub fn claim_taken(&self) -> bool {
        self.taken
    }

    /// Takes `entry` off its due queue before the interaction's own ops
    /// (the entry the sweeper took: the interaction's write may queue it
    /// again).
    pub fn cancel_first(&mut self, entry: &DueEntry) {
        self.first.push(entry.cancelled());
    }

    /// This write announces (an expiry notice) and is nobody's activity: it
    /// does not refresh `interaction_ttl`.
    pub fn as_announcement(&mut self) {
        self.announcement = true;
    }

    /// Emits `data` with the commit, about this interaction (`data` is
    /// `{"interaction": …}` as committed) or its subject (`{"subject": …}`),
    /// as its type says, then the members of its payload.
    pub fn emit(&mut self, data: EventData) {
        self.events.push(data);
    }

    /// The origin whose counts this interaction's attempts touch (`None`:
    /// scope `subject`, the subject's own).
    pub fn origin(&self) -> Option<String> {
        self.rec.lockout_origin(self.settings)
    }

    /// Counts a failed attempt of this interaction (for its subject, or its
    /// origin). Call only while the subject (or origin) is clear
    /// (`SubjectRecord::ensure_clear_for`).
    pub fn record_failure(&mut self, now: Timestamp) -> Failure {
        let (origin, s) = (self.origin(), self.settings);
        self.subject()
            .record_failure_for(origin.as_deref(), now, &s.lockout, &s.otp)
    }

    /// A success of this interaction clears its subject's (or origin's)
    /// failures and lockouts; an origin becomes familiar.
    pub fn record_success(&mut self, now: Timestamp) {
        let (origin, s) = (self.origin(), self.settings);
        self.subject()
            .record_success_for(origin.as_deref(), now, &s.lockout);
    }

    /// Records `draft` in the team's audit trail, in the same commit.
    pub fn audit(&mut self, draft: Draft) {
        self.audits.push(draft);
    }

    /// The audit entry of a lock or ban by failures: the gateway's own.
    fn audit_lockout(&mut self, action: Action, origin: Option<String>) {
        let target = Target {
            interaction_id: Some(self.rec.id),
            subject: Some(self.rec.subject()),
            origin,
            ..Target::default()
        };
        self.audit(Draft::success(action, &Acting::system(None), target));
    }

    /// `subject.locked` / `subject.banned` for a failure that locked or
    /// banned the subject or its origin (`data.origin`), and
    /// `subject.locked` / `subject.banned` with `data.origin` null when it
    /// locked out or banned the strangers; nothing for one that was only
    /// counted. A ban forgets the
    /// conversation; a lock only hides it.
    pub fn emit_lockout(&mut self, failure: &Failure) {
        let origin = SubjectChange {
            origin: failure.origin.clone(),
            actor: None,
        };
        match failure.outcome {
            FailureOutcome::Locked { .. } => {
                self.audit_lockout(Action::SubjectLocked, failure.origin.clone());
                self.emit(EventData::SubjectLocked(origin));
            }
            FailureOutcome::Banned { .. } => {
                self.forget_recognition();
                self.audit_lockout(Action::SubjectBanned, failure.origin.clone());
                self.emit(EventData::SubjectBanned(origin));
            }
            FailureOutcome::Counted { .. } => {}
        }
        let strangers = SubjectChange {
            origin: None,
            actor: None,
        };
        match failure.strangers {
            Some(SubjectStanding::Locked { .. }) => {
                self.audit_lockout(Action::SubjectLocked, None);
                self.emit(EventData::SubjectLocked(strangers));
            }
            Some(SubjectStanding::Banned { .. }) => {
                self.forget_recognition();
                self.audit_lockout(Action::SubjectBanned, None);
                self.emit(EventData::SubjectBanned(strangers));
            }
            Some(SubjectStanding::Clear) | None => {}
        }
    }

    /// Sends `notice` into the interaction's chat after the commit, at least
    /// once (the outbox retries it).
    pub fn notify(&mut self, notice: Notice) {
        self.notices.push(notice);
    }

    /// The interaction was just authenticated: its event, the expiry notice
    /// when that is due at once, and the `authenticated` message.
    pub fn announce_authenticated(&mut self) {
        self.emit(EventData::InteractionAuthenticated(Plain));
        if self.rec.expiring_due_at_once(self.settings) {
            self.emit(EventData::InteractionExpiring(Plain));
        }
        self.notify(Notice::Authenticated);
    }

    /// The outbox items of the decision, built from the records as they will
    /// be committed.
    fn outbox_items(
        &self,
        team: &Team,
        view: &InteractionView,
        subject: &SubjectView,
        now: Timestamp,
    ) -> Result<Vec<OutboxItem>> {
        let mut items = Vec::with_capacity(self.events.len() + self.notices.len());
        for data in &self.events {
            items.push(match data.kind().whom() {
                Whom::Interaction => OutboxItem::about_interaction(data, now, view)?,
                Whom::Subject => OutboxItem::about_subject(data, now, &team.id, subject)?,
            });
        }
        items.extend(self.notices.iter().map(|n| {
            let task = Task::Notice {
                notice: *n,
                interaction_id: self.rec.id,
                channel: self.rec.channel.clone(),
                conversation_id: self.rec.conversation_id.clone(),
                contact: self.rec.contact.clone(),
                locale: self.rec.requested_locale.as_ref().map(|l| l.tag.clone()),
            };
            OutboxItem::new(task, now)
        }));
        Ok(items)
    }
}

impl Writes for Work<'_> {
    /// Its claims go in the commit after every other op: when one finds
    /// its key taken, nothing is written and the decision is made again,
    /// on fresh records, with [`Work::claim_taken`] true.
    fn take(&mut self, write: Write) {
        match write.claim {
            true => self.claims.push(write.op),
            false => self.also.push(write.op),
        }
    }
}

/// What the use case wants done with its decision.
pub enum Step<T> {
    /// Commit what the decision changed, then answer `T`.
    Write(T),
    /// Like [`Step::Write`], but when the interaction did not change at all,
    /// write nothing (and so refresh no TTL).
    WriteIfChanged(T),
    /// Answer `T`; write nothing.
    Answer(T),
}

/// A finished unit of work: the answer and the records as they now stand.
pub struct Done<T> {
    pub value: T,
    pub view: InteractionView,
    pub rec: InteractionRecord,
}

/// A decision, before its commit.
struct Decided<'c, T> {
    w: Work<'c>,
    value: T,
    /// Whether it is to be committed (else only answered).
    write: bool,
}

/// What a try decided on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Basis {
    /// What the one ahead in line handed over (see `record_locks`).
    Handed,
    /// A fresh read, in line.
    InLine,
    /// A fresh read, outside the line.
    Outside,
}

/// What a try does with its decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// Answers it: a value without a write, or the error.
    Answer,
    /// Commits it.
    Commit,
    /// Gives the turn up at once, handing the records on, and decides again
    /// on a fresh read outside the line.
    GiveWay,
    /// Decides again in line, on a fresh read.
    Rejoin,
}

/// What a decision on `basis` leads to: `Ok(write)` when it wants to write
/// or not, `Err` when it refused or failed.
fn next(basis: Basis, decided: std::result::Result<bool, &Error>) -> Next {
    match (basis, decided) {
        // Records handed over are only as current as this instance knows:
        // ahead of the store when the commit that handed them did not
        // apply, behind it when another instance wrote since. A decision on
        // them counts only when it commits (the versions are checked then).
        // So a refusal (the link used, the code wrong, the subject locked)
        // is a verdict on records that may be wrong: it is decided
        // again on a fresh read, deliberately, and that decision — answer,
        // refusal or write — is the one that stands. It need not wait in
        // line: what it answers it answers without writing.
        (Basis::Handed, Err(e)) if !is_failure(e) => Next::GiveWay,
        // A failure (the store unavailable, a bug) says nothing about the
        // records, and a fresh read would not set it right: answered at
        // once, wherever it was decided.
        (_, Err(_)) => Next::Answer,
        // An answer without a write on handed records is confirmed in the
        // same way, so that a burst of callbacks on links already used or
        // pushed out reads the store side by side, not one after another
        // in line.
        (Basis::Handed, Ok(false)) => Next::GiveWay,
        (_, Ok(false)) => Next::Answer,
        // The fresh read outside the line wants to write where the handed
        // records did not: they were behind the store.
        (Basis::Outside, Ok(true)) => Next::Rejoin,
        (_, Ok(true)) => Next::Commit,
    }
}

/// Whether `e` is a failure (the store unavailable, a bug, a provider's)
/// rather than a refusal: it says nothing about the records decided on.
fn is_failure(e: &Error) -> bool {
    matches!(
        e,
        Error::StoreUnavailable | Error::Internal(_) | Error::Channel(_)
    )
}

/// What one try of a unit of work came to.
// Returned once per try and matched at once: boxing the finished work would
// cost an allocation on every request to save a move.
#[allow(clippy::large_enum_variant)]
enum Try<T> {
    Done(Done<T>),
    /// Decides again where its place now stands (outside the line, or in it
    /// on fresh reads), at once.
    Again,
    /// A claim found its key taken: decides again, on fresh records,
    /// knowing it.
    ClaimTaken,
    /// A concurrent write on fresh records: backs off, then decides again.
    Conflict,
}

/// A decision's commit, ready to send.
struct Prepared {
    ops: Vec<Op>,
    /// The records as the commit leaves them, for the next in line.
    committed: Option<Pair>,
    /// Where the claims are among the ops.
    claims: std::ops::Range<usize>,
    /// Its events and notices, to announce or deliver once it applied.
    recorded: Recorded,
}

impl Core {
    /// Read, change with `f`, write back; retried on concurrent writes.
    pub(in crate::gateway) async fn update_interaction<T: Send>(
        &self,
        team: &Team,
        id: Uuid,
        now: Timestamp,
        f: impl Fn(&mut Work<'_>) -> Result<T> + Sync,
    ) -> Result<(InteractionView, T)> {
        let f = &f;
        let done = self
            .transact(team, id, now, |w| {
                // Nothing changed: no write, and interaction_ttl is not refreshed.
                let out = f(w).map(Step::WriteIfChanged);
                Box::pin(std::future::ready(out))
            })
            .await?;
        Ok((done.view, done.value))
    }

    /// Runs `decide` on interaction `id` of `team` and commits its decision
    /// atomically, retrying on fresh data after a concurrent write (a bounded
    /// number of times, then 503). Units of work on one interaction queue
    /// in this process, each deciding on what the previous one sent to the
    /// store, so a retry means another instance wrote, or the previous
    /// commit did not apply. `decide` may run several times: it must not
    /// have effects outside the [`Work`] (events and messages go after).
    /// An absent or forgotten interaction is `NotFound`.
    ///
    /// `decide` returns a boxed future (`|w| Box::pin(async move { .. })`)
    /// so that it may read the store too, and stays `Send`.
    pub(in crate::gateway) async fn transact<'c, T, F>(
        &self,
        team: &'c Team,
        id: Uuid,
        now: Timestamp,
        decide: F,
    ) -> Result<Done<T>>
    where
        F: for<'w> FnMut(&'w mut Work<'c>) -> BoxFuture<'w, Result<Step<T>>>,
    {
        self.transact_on(team, (id, None), now, decide).await
    }

    /// [`Core::transact`] whose first decision is on `first`, when given:
    /// the records of interaction `id` its caller read just before (a
    /// link's page opened, docs/architecture.md#challenge-links), unless
    /// the one ahead in line hands over fresher ones. As on records
    /// handed over, the decision counts only when it commits (the versions
    /// are checked then), and a refusal is decided again on a fresh read.
    pub(in crate::gateway) async fn transact_on<'c, T, F>(
        &self,
        team: &'c Team,
        (id, mut first): (Uuid, Option<Pair>),
        now: Timestamp,
        mut decide: F,
    ) -> Result<Done<T>>
    where
        F: for<'w> FnMut(&'w mut Work<'c>) -> BoxFuture<'w, Result<Step<T>>>,
    {
        // One unit of work at a time on this interaction in this process
        // (see `record_locks`): no retry storm on a hot record. The previous
        // one hands over what it committed, so this one need not read it.
        let mut place = Place::join(&self.record_locks, id).await;
        let mut backoff = Backoff::default();
        let mut taken = false;
        loop {
            let given = first.take();
            let tried = try_once(self, team, id, now, (&mut place, given), taken, &mut decide);
            let tried = tried.await?;
            match tried {
                Try::Done(done) => return Ok(done),
                Try::Again => {}
                Try::ClaimTaken => taken = true,
                // The budget is for conflicts on fresh reads.
                Try::Conflict => backoff.wait().await?,
            }
        }
    }
}

/// One try: load (what is handed over, or a fresh read), decide, and
/// commit — or answer, or go where [`next`] says to decide again.
async fn try_once<'c, T, F>(
    core: &Core,
    team: &'c Team,
    id: Uuid,
    now: Timestamp,
    (place, given): (&mut Place<'_, Pair>, Option<Pair>),
    taken: bool,
    decide: &mut F,
) -> Result<Try<T>>
where
    F: for<'w> FnMut(&'w mut Work<'c>) -> BoxFuture<'w, Result<Step<T>>>,
{
    let handed = place.handed(|p| p.is_live(team, now)).await;
    // Records read just before by the caller stand as handed ones.
    let handed = handed.or_else(|| given.filter(|p| p.is_live(team, now)));
    let basis = match (&handed, place.standing()) {
        (Some(_), _) => Basis::Handed,
        (None, Standing::Outside) => Basis::Outside,
        (None, _) => Basis::InLine,
    };
    let pair = match handed {
        Some(p) => p,
        None => core.load_pair(team, id, now).await?,
    };
    let decided = decide_on(core, team, &pair, taken, decide).await;
    match next(basis, decided.as_ref().map(|d| d.write)) {
        Next::Answer => {
            let Decided { w, value, .. } = decided?;
            Ok(Try::Done(Done {
                value,
                view: w.view(team, now),
                rec: w.rec,
            }))
        }
        Next::Commit => {
            let handed = basis == Basis::Handed;
            commit(core, team, now, place, &pair, decided?, handed).await
        }
        Next::GiveWay => {
            place.give_way(pair);
            Ok(Try::Again)
        }
        Next::Rejoin => {
            place.rejoin();
            Ok(Try::Again)
        }
    }
}

/// Runs `decide` on `pair`, and settles what the conversation remembers
/// and whether the decision is to be written.
async fn decide_on<'c, T, F>(
    core: &Core,
    team: &'c Team,
    pair: &Pair,
    taken: bool,
    decide: &mut F,
) -> Result<Decided<'c, T>>
where
    F: for<'w> FnMut(&'w mut Work<'c>) -> BoxFuture<'w, Result<Step<T>>>,
{
    let read = pair.rec()?;
    let mut w = Work::new(team.settings_for(&read.channel), pair, taken)?;
    let step = decide(&mut w).await?;
    // Every authentication that names a customer remembers the
    // conversation as theirs, where the channel remembers any.
    if w.recognition.is_some() {
        let remembered = core
            .config
            .recognize_for(team, &read.channel)
            .and_then(|d| Recognition::of_new_authentication(read, &w.rec, d));
        if remembered.is_some() {
            w.recognized = remembered;
        }
    }
    let (value, write) = match step {
        Step::Write(v) => (v, true),
        Step::WriteIfChanged(v) => (v, w.changed(read)),
        Step::Answer(v) => (v, false),
    };
    Ok(Decided { w, value, write })
}

/// Commits a decision on `pair` (`handed` over, or read). The commit is
/// sent (its first poll queues it on the store's connection), then the
/// next in line goes on with what it will have written: its own commit
/// follows this one, and names the versions this one writes, so it
/// applies only if this one did. Should this one not apply, the next
/// conflicts and reads afresh.
async fn commit<T>(
    core: &Core,
    team: &Team,
    now: Timestamp,
    place: &mut Place<'_, Pair>,
    pair: &Pair,
    decided: Decided<'_, T>,
    handed: bool,
) -> Result<Try<T>> {
    let Decided { mut w, value, .. } = decided;
    // The subject as handed over may be behind another
    // interaction's write of it: written back, its version is checked.
    w.subject_used |= handed;
    let view = w.view(team, now);
    let Prepared {
        mut ops,
        committed,
        claims,
        recorded,
    } = prepare(core, team, pair, &mut w, &view, now)?;
    // Audited: in line on the team's audit head too (see `trail`), from
    // here until the commit is sent.
    let (mut audited, mut head) =
        super::trail::chain(core, &team.keyspace, std::mem::take(&mut w.audits), now).await?;
    ops.append(&mut audited.ops);
    let mut commit = core.store.commit(ops).instrument(crate::spans::commit());
    let sent = futures::poll!(&mut commit);
    place.sent(committed);
    if let Some(head) = head.as_mut() {
        head.sent(audited.head.take());
    }
    let outcome = match sent {
        std::task::Poll::Ready(outcome) => outcome,
        std::task::Poll::Pending => commit.await,
    };
    Ok(match outcome? {
        Commit::Applied => {
            count(w.events.iter().map(EventData::kind), &w.rec);
            super::trail::written(core, &team.keyspace, &audited.entries);
            super::outbox::recorded(core, recorded);
            after_ban(core, team, &w).await;
            Try::Done(Done {
                value,
                view,
                rec: w.rec,
            })
        }
        // Every op before it matched: the claim alone is refused.
        Commit::Conflict { op } if claims.contains(&op) => {
            place.read_afresh();
            Try::ClaimTaken
        }
        // The unit of work ahead did not commit what it handed over
        // (every one queued behind it conflicts too): read afresh at
        // once.
        Commit::Conflict { .. } if handed => {
            place.read_afresh();
            Try::Again
        }
        Commit::Conflict { .. } => Try::Conflict,
    })
}

/// The ops that commit decision `w` on `pair`, and what they will have
/// written.
fn prepare(
    core: &Core,
    team: &Team,
    pair: &Pair,
    w: &mut Work<'_>,
    view: &InteractionView,
    now: Timestamp,
) -> Result<Prepared> {
    let settings = w.settings;
    let subject = SubjectView::of(&w.subject, now, &settings.lockout);
    let items = w.outbox_items(team, view, &subject, now)?;
    let version = pair.interaction.version;
    let read = pair.interaction.value.as_ref();
    let mut ops = std::mem::take(&mut w.first);
    let own = ops.len();
    let written = if w.announcement {
        // The sweeper took the entry it announces off the queue
        // (`first`): every due time left is queued again.
        let kept = Bookkeeping {
            due_held: None,
            ..pair.kept
        };
        interaction_ops(team, version, read, kept, &w.rec, now)?
    } else {
        write_interaction(team, version, read, pair.kept, &mut w.rec, now)?
    };
    let kept = written.kept;
    ops.extend(written);
    let subject_at = ops.len();
    if w.subject_used {
        ops.extend(write_subject(&pair.subject, &w.subject, settings, now)?);
    }
    // What the conversation remembers, as the commit leaves it.
    let recognition = match &w.recognition {
        Some(read) if w.recognition_changed() => {
            if let Some(r) = &w.recognized {
                let theirs = keys::subject(&team.keyspace, &r.customer_id);
                core.remembered_subjects.remember(&read.key, &theirs);
            }
            let (more, written) = recognition_ops(team, read, w.recognized.as_ref(), now)?;
            ops.extend(more);
            Some(written)
        }
        unchanged => unchanged.clone(),
    };
    // What the commit will have written, to hand to the next in line.
    let committed = committed_pair(pair, &ops, own, subject_at, &team.keyspace, w).map(|p| Pair {
        recognition,
        kept,
        ..p
    });
    ops.append(&mut w.also);
    let claims = ops.len()..ops.len() + w.claims.len();
    ops.append(&mut w.claims);
    let mut recorded = super::outbox::record(core, &team.keyspace, items, now)?;
    ops.append(&mut recorded.ops);
    Ok(Prepared {
        ops,
        committed,
        claims,
        recorded,
    })
}

/// A ban of a subject that names a customer forgets every conversation
/// remembering that customer, not only this one (which the commit
/// forgot). After the commit, which stands whatever this does: a
/// failure is logged, and the ban still hides them while it lasts.
async fn after_ban(core: &Core, team: &Team, w: &Work<'_>) {
    let banned = w
        .events
        .iter()
        .any(|data| data.kind() == EventType::SubjectBanned);
    let Some(customer) = w.rec.customer_ref.as_deref().filter(|_| banned) else {
        return;
    };
    if let Err(e) = super::forget::forget_recognitions_of(core, team, customer).await {
        tracing::warn!(error = %e, "recognized conversations of a banned subject not forgotten");
    }
}

/// The interaction and its subject as the commit of `ops` leaves them:
/// `ops[own]` is the interaction's `Put`, `ops[subject_at]` (when the
/// decision used the subject) the subject's `Put` or `Delete`. `None` when
/// the interaction now names another subject than the one read (the next
/// unit of work reads afresh).
fn committed_pair(
    read: &Pair,
    ops: &[Op],
    own: usize,
    subject_at: usize,
    keyspace: &str,
    w: &Work<'_>,
) -> Option<Pair> {
    let Some(Op::Put { key, version, .. }) = ops.get(own) else {
        return None;
    };
    let interaction = Loaded {
        key: key.clone(),
        version: *version,
        value: Some(w.rec.clone()),
    };
    let subject = if !w.subject_used {
        read.subject.clone()
    } else {
        match ops.get(subject_at)? {
            Op::Put { key, version, .. } => Loaded {
                key: key.clone(),
                version: *version,
                value: Some(w.subject.clone()),
            },
            Op::Delete { key, .. } => Loaded {
                key: key.clone(),
                version: 0,
                value: None,
            },
            _ => return None,
        }
    };
    let same_subject = keys::subject(keyspace, &w.rec.subject()) == subject.key;
    same_subject.then_some(Pair {
        interaction,
        subject,
        recognition: None,
        remembered: read.remembered.clone(),
        kept: Bookkeeping::default(),
    })
}

/// Counts what a committed decision did: the kinds of its events.
fn count(kinds: impl Iterator<Item = EventType>, rec: &InteractionRecord) {
    for kind in kinds {
        match kind {
            EventType::InteractionAuthenticated => {
                let auth = rec.auth.as_ref();
                let method = auth.map_or("none", |a| a.method.as_str());
                metrics::counter!("chatgate_authentications_total", "method" => method)
                    .increment(1);
            }
            EventType::SubjectLocked | EventType::SubjectBanned => {
                metrics::counter!("chatgate_lockouts_total", "kind" => kind.as_str()).increment(1);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way a decision can go, on each basis: nothing is dropped but a
    /// refusal on handed records, which is decided again on a fresh read.
    #[test]
    fn what_a_decision_leads_to() {
        let used = Error::TokenUsed;
        let locked = Error::Locked {
            until: Timestamp::from_unix_seconds(1_800_000_000),
            retry_after: 60,
        };
        let down = Error::StoreUnavailable;
        let bug = Error::internal("a test's bug");
        for (basis, decided, want) in [
            // Refusals on handed records are confirmed on a fresh read ...
            (Basis::Handed, Err(&used), Next::GiveWay),
            (Basis::Handed, Err(&locked), Next::GiveWay),
            // ... failures are answered at once ...
            (Basis::Handed, Err(&down), Next::Answer),
            (Basis::Handed, Err(&bug), Next::Answer),
            // ... and on a fresh read, every error is.
            (Basis::InLine, Err(&used), Next::Answer),
            (Basis::InLine, Err(&down), Next::Answer),
            (Basis::Outside, Err(&used), Next::Answer),
            (Basis::Outside, Err(&bug), Next::Answer),
            // No write: confirmed on a fresh read, or answered.
            (Basis::Handed, Ok(false), Next::GiveWay),
            (Basis::InLine, Ok(false), Next::Answer),
            (Basis::Outside, Ok(false), Next::Answer),
            // A write: committed, in line.
            (Basis::Handed, Ok(true), Next::Commit),
            (Basis::InLine, Ok(true), Next::Commit),
            (Basis::Outside, Ok(true), Next::Rejoin),
        ] {
            assert_eq!(next(basis, decided), want, "{basis:?} {decided:?}");
        }
    }
}
