//! Storage behind one trait, so handlers never know which database answers.
//!
//! [`Store`] speaks in the contract's types. The SQLite backend ([`sqlite`]) is the default: one
//! file, WAL, a single writer thread that commits jobs in groups. A PostgreSQL backend adds a
//! module next to it implementing the same trait; nothing in `routes` or `realtime` changes.
//!
//! Committed messages (user and system) are handed to a [`CommitListener`] in commit order, so
//! the realtime hub fans them out in `seq` order without asking the database again.

pub mod money;
pub mod postgres;
pub mod sqlite;

pub use money::*;

use crate::error::{Error, Result};
use crate::state::Action;
use async_trait::async_trait;
use tara_protocol::auth::{DeviceInfo, ProfilePatch, UserType};
use tara_protocol::consultations::{
    Consultation, ConsultationEvent, FeedbackRequest, FeedbackResponse,
};
use tara_protocol::customers::{CustomerProfile, CustomerProfileInput};
use tara_protocol::devices::PushPlatform;
use tara_protocol::guides::GuideRating;
use tara_protocol::messages::{Message, MessageKind, SenderType};
use tara_protocol::{ClientMsgId, ConsultationId, MediaId, SessionId, UserId};

/// A user account.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Customer or guide.
    pub user_type: UserType,
    /// Full phone with country code.
    pub phone: String,
    /// Name others see.
    pub display_name: String,
    /// Picture.
    pub avatar_url: Option<String>,
    /// Last time connected, ms since epoch.
    pub last_seen_ms: Option<i64>,
}

/// A guide to add from the command line.
#[derive(Debug, Clone)]
pub struct NewGuide {
    /// Full phone with country code.
    pub phone: String,
    /// Display name.
    pub name: String,
    /// Price per minute.
    pub rate_per_minute: i64,
    /// What the guide reads.
    pub skills: Vec<String>,
    /// Languages.
    pub languages: Vec<String>,
    /// Starts set online (demo guides).
    pub available: bool,
}

/// A guide as stored: everything but the live status, which needs presence.
#[derive(Debug, Clone, PartialEq)]
pub struct GuideRow {
    /// The guide's account.
    pub user: User,
    /// Price per minute.
    pub rate_per_minute: i64,
    /// Skills.
    pub skills: Vec<String>,
    /// Languages.
    pub languages: Vec<String>,
    /// Set online by the guide.
    pub available: bool,
    /// Holds an accepted or in-progress consultation.
    pub busy: bool,
    /// Has a push token on a live session: reachable while no app of theirs is connected.
    pub push_reachable: bool,
    /// Average rating.
    pub rating_avg: f64,
    /// Ratings received.
    pub rating_count: i64,
}

/// A code request, as stored (the code itself only hashed).
#[derive(Debug, Clone)]
pub struct OtpRecord {
    /// Its id.
    pub request_id: String,
    /// Full phone.
    pub phone: String,
    /// For which kind of account.
    pub user_type: UserType,
    /// Keyed hash of the code.
    pub code_hash: Vec<u8>,
    /// When made, ms.
    pub created_ms: i64,
    /// When it dies, ms.
    pub expires_ms: i64,
}

/// What checking a code found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpOutcome {
    /// Right code; the request is used up.
    Accepted,
    /// Wrong code; tries are left.
    Wrong,
    /// Wrong code, and that was the last try: the request is burned.
    Burned,
    /// The request was burned before.
    AlreadyBurned,
    /// Past its lifetime, or already used.
    Expired,
    /// No such request for that phone.
    Unknown,
}

/// A device session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    /// Its id.
    pub session_id: SessionId,
    /// Whose.
    pub user_id: UserId,
    /// From where.
    pub device_info: DeviceInfo,
    /// Opened, ms.
    pub created_ms: i64,
    /// Last login or refresh, ms.
    pub last_used_ms: i64,
    /// Revoked, ms.
    pub revoked_ms: Option<i64>,
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshOutcome {
    /// Rotated: the old token is dead, the new one stored.
    Rotated {
        /// The session.
        session: SessionRow,
    },
    /// A dead token came back: the whole session is now revoked.
    Reused {
        /// The revoked session.
        session_id: SessionId,
    },
    /// The session was already revoked.
    Revoked,
    /// Never seen.
    Unknown,
}

/// A consultation to create.
#[derive(Debug, Clone)]
pub struct NewConsultation {
    /// Its id (UUID v7).
    pub consultation_id: ConsultationId,
    /// Who asks.
    pub customer_id: UserId,
    /// Who is asked.
    pub guide_id: UserId,
    /// `chat`.
    pub mode: String,
    /// The guide's rate now.
    pub rate_per_minute: i64,
    /// Birth details snapshot.
    pub intake: Option<CustomerProfile>,
    /// When, ms.
    pub now_ms: i64,
}

/// Who acts on a consultation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// A person.
    User(UserId),
    /// The server (timeouts).
    System,
}

/// A consultation after a transition.
#[derive(Debug, Clone, PartialEq)]
pub struct Transitioned {
    /// After the change.
    pub consultation: Consultation,
    /// What to tell both parties, if the state changed.
    pub event: Option<ConsultationEvent>,
}

/// One side of a consultation, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ParticipantRow {
    /// The account.
    pub user: User,
    /// Joined at, ms.
    pub joined_ms: Option<i64>,
    /// Highest seq stored by the user's devices.
    pub delivered_seq: i64,
    /// Highest seq seen.
    pub read_seq: i64,
    /// Messages from the other side not read.
    pub unread_count: i64,
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Where.
    pub consultation_id: ConsultationId,
    /// Who.
    pub sender_id: UserId,
    /// The sender's idempotency id.
    pub client_msg_id: ClientMsgId,
    /// Text or image.
    pub kind: MessageKind,
    /// Trimmed, validated content.
    pub content: String,
    /// The image.
    pub media_id: Option<MediaId>,
    /// The connection's chain of pipelined sends, if it came over one.
    pub chain: Option<std::sync::Arc<SendChain>>,
}

/// A stored message and whether it was stored before.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    /// The stored message.
    pub message: Message,
    /// True when this `(sender, client_msg_id)` was already stored.
    pub duplicate: bool,
}

/// `FORBIDDEN` unless `user` is the consultation's customer or its guide: who may read and act
/// on a consultation.
pub fn require_side(customer: UserId, guide: UserId, user: UserId) -> Result<()> {
    if user == customer || user == guide {
        Ok(())
    } else {
        Err(Error::forbidden("this consultation is not yours"))
    }
}

/// A committed message and what the hub needs to route it (and what crosses to other nodes).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Committed {
    /// The message.
    pub message: Message,
    /// The consultation's customer.
    pub customer_id: UserId,
    /// The consultation's guide.
    pub guide_id: UserId,
    /// The other party's unread count after it, when it changed.
    pub unread: Option<(UserId, i64)>,
}

/// A last check run inside the write, after duplicates are answered and the consultation's
/// state is checked, just before a new message is stored (the message rate limit).
pub type Admission = Box<dyn FnOnce() -> Result<()> + Send>;

/// The sends of one connection that are queued together without waiting for each other's
/// answers. Once one of them is refused for a reason that may pass (a rate limit, a failed
/// commit), the chain breaks: every later send of it is refused too, so a later message can
/// never be stored before an earlier one. The connection starts a new chain when the refused
/// message is sent again.
#[derive(Debug, Default)]
pub struct SendChain {
    /// The code and wait of the refusal that broke it.
    broken: std::sync::Mutex<Option<(tara_protocol::ErrorCode, Option<u64>)>>,
}

impl SendChain {
    /// A new, unbroken chain.
    pub fn new() -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self::default())
    }

    /// The error to give a later send while the chain is broken; None while it holds.
    pub fn broken(&self) -> Option<Error> {
        let (code, retry_after) = (*self.broken.lock().ok()?)?;
        Some(Error {
            code,
            message: "an earlier message of this connection was refused; send it again first"
                .into(),
            details: retry_after.map(|s| serde_json::json!({ "retry_after": s })),
            retry_after,
        })
    }

    /// Breaks the chain when `answer` is a refusal that may pass (the first one is kept).
    pub fn note<T>(&self, answer: &Result<T>) {
        if let Err(e) = answer {
            self.break_with(e);
        }
    }

    /// Breaks the chain when `e` may pass (a rate limit, a failed write); other refusals
    /// (a text too long, a closed consultation) are final and leave it whole.
    pub fn break_with(&self, e: &Error) {
        if matches!(
            e.code,
            tara_protocol::ErrorCode::RateLimited | tara_protocol::ErrorCode::Internal
        ) {
            if let Ok(mut b) = self.broken.lock() {
                b.get_or_insert((e.code, e.retry_after));
            }
        }
    }
}

/// A job's hold on its chain while the writer has it: settled with the job's answer, or, if
/// the job is dropped unanswered (the writer could not begin a transaction, or has stopped),
/// breaking the chain so nothing queued after it is stored first.
pub struct ChainLink(Option<std::sync::Arc<SendChain>>);

impl ChainLink {
    /// Holds `chain` (nothing to hold for a send that came alone).
    pub fn new(chain: Option<std::sync::Arc<SendChain>>) -> Self {
        Self(chain)
    }

    /// Notes a decision or an answer without letting go.
    pub fn note<T>(&self, answer: &Result<T>) {
        if let Some(chain) = &self.0 {
            chain.note(answer);
        }
    }

    /// The final answer: noted, and the hold let go.
    pub fn settle<T>(mut self, answer: &Result<T>) {
        if let Some(chain) = self.0.take() {
            chain.note(answer);
        }
    }
}

impl Drop for ChainLink {
    fn drop(&mut self) {
        if let Some(chain) = self.0.take() {
            chain.break_with(&Error::internal("the database writer dropped a message"));
        }
    }
}

/// A message queued for the writer; [`PendingAppend::wait`] gives the answer after the commit.
/// Messages queued one after another are decided in that order.
pub struct PendingAppend(tokio::sync::oneshot::Receiver<Result<Appended>>);

impl PendingAppend {
    /// Wraps the writer's answer channel.
    pub fn new(rx: tokio::sync::oneshot::Receiver<Result<Appended>>) -> Self {
        Self(rx)
    }

    /// The answer: stored (or stored before), or refused.
    pub async fn wait(self) -> Result<Appended> {
        self.0
            .await
            .map_err(|_| Error::internal("the database writer dropped a job"))?
    }
}

/// Receives committed messages, in commit (and so `seq`) order.
pub trait CommitListener: Send + Sync + 'static {
    /// Called once per committed group, right after the commit.
    fn committed(&self, batch: &[Committed]);
}

/// Which part of history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryRange {
    /// The newest messages.
    Latest,
    /// Just below this seq.
    Before(i64),
    /// Just above this seq.
    After(i64),
    /// Above the first, below the second.
    Between(i64, i64),
}

/// Delivered or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Stored on a device.
    Delivered,
    /// Seen by the person.
    Read,
}

/// A participant's progress after a receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Highest seq stored by the user's devices.
    pub delivered_seq: i64,
    /// Highest seq seen.
    pub read_seq: i64,
    /// Messages from the other side not read.
    pub unread_count: i64,
    /// Whether anything changed.
    pub changed: bool,
}

/// One row of a chat list, before live status is added.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRow {
    /// The consultation.
    pub consultation: Consultation,
    /// The other side.
    pub other: User,
    /// Its newest message.
    pub last_message: Option<Message>,
    /// The caller's unread count.
    pub unread_count: i64,
    /// Sort key: newest activity, ms.
    pub activity_ms: i64,
}

/// An uploaded image.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaRow {
    /// Its id.
    pub media_id: MediaId,
    /// The consultation it belongs to.
    pub consultation_id: ConsultationId,
    /// Who uploaded it.
    pub uploader_id: UserId,
    /// The uploader's `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// MIME type.
    pub content_type: String,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
    /// Size.
    pub bytes: u64,
    /// When, ms.
    pub created_ms: i64,
}

/// A device session's push token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTokenRow {
    /// The session it belongs to.
    pub session_id: SessionId,
    /// Whose.
    pub user_id: UserId,
    /// FCM or APNs.
    pub platform: PushPlatform,
    /// The provider's token for the device.
    pub token: String,
    /// Pushes to it carry no message text.
    pub private_previews: bool,
    /// Registered, ms.
    pub updated_ms: i64,
}

/// The storage a server runs on.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // --- users
    /// A user by id.
    async fn user(&self, id: UserId) -> Result<Option<User>>;
    /// A user by phone and kind.
    async fn user_by_phone(&self, phone: &str, user_type: UserType) -> Result<Option<User>>;
    /// The customer with this phone, created if new; a new one gets `welcome_credit` (if above
    /// 0) in the same transaction, as an `adjustment` (the demo's starting balance).
    async fn ensure_customer(
        &self,
        phone: &str,
        display_name: &str,
        now_ms: i64,
        welcome_credit: i64,
    ) -> Result<User>;
    /// Adds a guide; `VALIDATION_FAILED` if the phone already has one.
    async fn add_guide(&self, guide: NewGuide, now_ms: i64) -> Result<UserId>;
    /// Changes name or picture.
    async fn update_profile(&self, id: UserId, patch: ProfilePatch) -> Result<User>;
    /// Records the last time a user was connected.
    async fn set_last_seen(&self, id: UserId, at_ms: i64) -> Result<()>;

    // --- OTP
    /// Creation times of codes asked for this phone since `since_ms`.
    async fn otp_times(&self, phone: &str, since_ms: i64) -> Result<Vec<i64>>;
    /// Stores a new code request.
    async fn insert_otp(&self, record: OtpRecord) -> Result<()>;
    /// Forgets a code request (its SMS could not be sent), so it no longer counts.
    async fn delete_otp(&self, request_id: &str) -> Result<()>;
    /// Checks a code; counts a wrong one; burns after `max_attempts` wrong ones.
    async fn check_otp(
        &self,
        request_id: &str,
        phone: &str,
        user_type: UserType,
        code_hash: Vec<u8>,
        now_ms: i64,
        max_attempts: u32,
    ) -> Result<OtpOutcome>;

    // --- sessions and refresh tokens
    /// Opens a device session with its first refresh token; returns sessions evicted past `max`.
    async fn create_session(
        &self,
        user: UserId,
        device: DeviceInfo,
        refresh_hash: Vec<u8>,
        max: usize,
        now_ms: i64,
    ) -> Result<(SessionRow, Vec<SessionId>)>;
    /// Swaps a live refresh token for a new one; a dead one revokes its session, unless it comes
    /// with the retry key of its first use (`retry_hash`), within
    /// `tara_protocol::auth::REFRESH_RETRY_WINDOW_SECS` of it, and the successor it got then
    /// is unused: then that successor dies and `new_hash` replaces it (a lost answer, retried).
    async fn rotate_refresh(
        &self,
        old_hash: Vec<u8>,
        new_hash: Vec<u8>,
        retry_hash: Option<Vec<u8>>,
        now_ms: i64,
    ) -> Result<RefreshOutcome>;
    /// A session by id.
    async fn session(&self, id: &SessionId) -> Result<Option<SessionRow>>;
    /// A user's live sessions, most recently used first.
    async fn sessions(&self, user: UserId) -> Result<Vec<SessionRow>>;
    /// Revokes one of a user's sessions; false if it was not theirs or not live.
    async fn revoke_session(&self, user: UserId, id: &SessionId, now_ms: i64) -> Result<bool>;

    // --- push tokens
    /// Stores a session's token, replacing the one it had; the same token on any other
    /// session is dropped (the device signed in again, or changed hands).
    async fn set_push_token(&self, row: PushTokenRow) -> Result<()>;
    /// Forgets a session's token; false if it had none.
    async fn delete_session_push_token(&self, session: &SessionId) -> Result<bool>;
    /// Forgets a token wherever it is, or only among `user`'s sessions; false if not found.
    async fn delete_push_token(&self, user: Option<UserId>, token: &str) -> Result<bool>;
    /// A user's tokens on live (not revoked) sessions.
    async fn push_tokens(&self, user: UserId) -> Result<Vec<PushTokenRow>>;

    // --- guides
    /// Guides with id above `after`, in id order.
    async fn guides(&self, after: Option<UserId>, limit: usize) -> Result<Vec<GuideRow>>;
    /// One guide.
    async fn guide(&self, id: UserId) -> Result<Option<GuideRow>>;
    /// Sets a guide online or offline.
    async fn set_guide_available(&self, id: UserId, available: bool) -> Result<()>;
    /// A page of the ratings a guide received, newest first, after the cursor
    /// `(submitted_at_ms, consultation_id)`.
    async fn guide_ratings(
        &self,
        guide: UserId,
        cursor: Option<(i64, ConsultationId)>,
        limit: usize,
    ) -> Result<Vec<GuideRating>>;

    // --- customer profiles
    /// Every profile of a customer, primary first.
    async fn profiles(&self, customer: UserId) -> Result<Vec<CustomerProfile>>;
    /// Writes the primary profile (creating or replacing it).
    async fn save_primary_profile(
        &self,
        customer: UserId,
        input: CustomerProfileInput,
        now_ms: i64,
    ) -> Result<CustomerProfile>;
    /// Adds another profile.
    async fn add_profile(
        &self,
        customer: UserId,
        input: CustomerProfileInput,
        now_ms: i64,
    ) -> Result<CustomerProfile>;
    /// One profile.
    async fn profile(&self, profile_id: i64) -> Result<Option<CustomerProfile>>;

    // --- consultations
    /// Creates a request; `CONSULTATION_ACTIVE` or `GUIDE_UNAVAILABLE` as the rules say, and
    /// `INSUFFICIENT_BALANCE` unless the customer holds 5 minutes at the rate.
    async fn create_consultation(&self, new: NewConsultation) -> Result<Consultation>;
    /// One consultation.
    async fn consultation(&self, id: &ConsultationId) -> Result<Option<Consultation>>;
    /// Applies a state change atomically, writing its system message. A completion charges the
    /// customer in the same transaction (see [`crate::billing::bill`]), at the store's tariff.
    async fn transition(
        &self,
        id: &ConsultationId,
        action: Action,
        actor: Actor,
        now_ms: i64,
    ) -> Result<Transitioned>;
    /// Both sides of a consultation, customer first.
    async fn participants(&self, id: &ConsultationId) -> Result<Vec<ParticipantRow>>;
    /// The user's requested, accepted or in-progress consultations (newest first).
    async fn active_consultations(&self, user: UserId) -> Result<Vec<Consultation>>;
    /// Every consultation still `requested` (to re-arm timeouts after a restart).
    async fn requested_consultations(&self) -> Result<Vec<Consultation>>;
    /// Every consultation `in_progress` (to re-arm balance timers after a restart).
    async fn running_consultations(&self) -> Result<Vec<Consultation>>;
    /// A page of the chat list, newest activity first, after the cursor `(activity_ms, id)`.
    async fn chat_list(
        &self,
        user: UserId,
        cursor: Option<(i64, ConsultationId)>,
        limit: usize,
    ) -> Result<Vec<ChatRow>>;
    /// Stores the customer's rating once.
    async fn add_feedback(
        &self,
        id: &ConsultationId,
        customer: UserId,
        feedback: FeedbackRequest,
        now_ms: i64,
    ) -> Result<FeedbackResponse>;

    // --- messages
    /// Stores a message once per `(sender, client_msg_id)`, assigning the next seq. A message
    /// already stored is answered as it was, without asking `admit`.
    async fn append_message(
        &self,
        new: NewMessage,
        now_ms: i64,
        admit: Admission,
    ) -> Result<Appended> {
        self.queue_message(new, now_ms, admit).await?.wait().await
    }
    /// [`Store::append_message`] without waiting for the answer: returns once the message is
    /// queued for the writer. When the group it is committed in fails, `new.chain` is broken
    /// before anything queued after it is decided.
    async fn queue_message(
        &self,
        new: NewMessage,
        now_ms: i64,
        admit: Admission,
    ) -> Result<PendingAppend>;
    /// A page of history for `user`, who must take part in the consultation
    /// (`CONSULTATION_NOT_FOUND` or `FORBIDDEN` otherwise): the check and the page in one trip
    /// where the backend can, since history is the most read thing there is.
    async fn history_for(
        &self,
        id: &ConsultationId,
        user: UserId,
        range: HistoryRange,
        limit: usize,
    ) -> Result<(Vec<Message>, bool)> {
        let c = self
            .consultation(id)
            .await?
            .ok_or_else(Error::consultation_not_found)?;
        require_side(c.customer_id, c.guide_id, user)?;
        self.messages(id, range, limit).await
    }
    /// A page of history, ascending, and whether more lie beyond it.
    async fn messages(
        &self,
        id: &ConsultationId,
        range: HistoryRange,
        limit: usize,
    ) -> Result<(Vec<Message>, bool)>;
    /// Moves a participant's delivered or read mark forward (never back).
    async fn mark(
        &self,
        id: &ConsultationId,
        user: UserId,
        mark: Mark,
        up_to: i64,
    ) -> Result<Progress>;

    // --- media
    /// Stores an upload's record; an existing one with the same key wins.
    async fn insert_media(&self, media: MediaRow) -> Result<MediaRow>;
    /// One upload.
    async fn media(&self, id: &MediaId) -> Result<Option<MediaRow>>;
    /// An upload by its uploader's idempotency key.
    async fn media_by_key(&self, uploader: UserId, key: &str) -> Result<Option<MediaRow>>;

    // --- silent consultations
    /// A person typed or read in a running consultation: its last activity moves to `at_ms`
    /// (messages move it as they are stored).
    async fn touch_consultation(&self, id: &ConsultationId, at_ms: i64) -> Result<()>;
    /// The last activity of a running consultation (its start if none yet); `None` if it is
    /// not running.
    async fn last_active(&self, id: &ConsultationId) -> Result<Option<i64>>;
    /// Marks since when a running consultation's guide is away (`None`: back); the
    /// consultation after it, if that changed anything.
    async fn set_guide_away(
        &self,
        id: &ConsultationId,
        since_ms: Option<i64>,
    ) -> Result<Option<Consultation>>;

    // --- wallet and billing
    /// A user's wallet (balance 0 in the store's currency if none was opened yet).
    async fn wallet(&self, user: UserId) -> Result<WalletRow>;
    /// A page of a user's ledger, newest first, below the cursor (a ledger seq); each entry
    /// with its seq.
    async fn ledger(
        &self,
        user: UserId,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, tara_protocol::wallet::LedgerEntry)>>;
    /// Adds money to a wallet (an `adjustment`); also leaves a notice for running servers.
    async fn credit(&self, credit: Credit) -> Result<WalletRow>;
    /// Opens a recharge once per (user, idempotency key), captured at once if asked.
    async fn open_payment(&self, payment: NewPayment) -> Result<Opened>;
    /// One payment.
    async fn payment(&self, payment_id: &str) -> Result<Option<PaymentRow>>;
    /// The gateway says it was paid: credits the wallet once. `VALIDATION_FAILED` for an
    /// unknown payment or another amount.
    async fn capture_payment(&self, payment_id: &str, amount: i64, now_ms: i64) -> Result<Settled>;
    /// The gateway says it failed: nothing is credited.
    async fn fail_payment(&self, payment_id: &str, now_ms: i64) -> Result<Settled>;
    /// A guide's earnings, newest first, below the cursor, with the total and what was
    /// earned since `since_ms`.
    async fn earnings(
        &self,
        guide: UserId,
        before: Option<i64>,
        limit: usize,
        since_ms: i64,
    ) -> Result<EarningsPage>;
    /// Wallets changed outside this server (operator commands): the newest notice id, and
    /// whose wallets changed after notice `after` (none when `after` is `None`: the first call).
    async fn wallet_notices(&self, after: Option<i64>) -> Result<(i64, Vec<UserId>)>;
    /// Every wallet whose cached balance differs from the sum of its ledger rows:
    /// `(user, cached, sum)`. Empty when the books balance.
    async fn ledger_audit(&self) -> Result<Vec<(UserId, i64, i64)>>;

    /// Waits for everything queued to be committed; used by graceful shutdown.
    async fn flush(&self) -> Result<()>;

    /// Which engine this is, for `GET /api/v1/health` (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;
    /// Answers when both reading and writing work; an error says what does not.
    async fn ping(&self) -> Result<()>;
}

/// The sender type that goes with a user type.
pub fn sender_type(t: UserType) -> SenderType {
    match t {
        UserType::Customer => SenderType::Customer,
        UserType::Guide => SenderType::Guide,
    }
}

/// Whether a dead refresh token's second coming is its client retrying: the key of its first
/// use, within the window.
pub(crate) fn refresh_retry_matches(key: &[u8], first: &[u8], used_ms: i64, now_ms: i64) -> bool {
    crate::auth::tokens::constant_time_eq(key, first)
        && now_ms - used_ms <= tara_protocol::auth::REFRESH_RETRY_WINDOW_SECS * 1000
}
