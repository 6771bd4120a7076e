//! `Store` for `SqliteStore`: each call is a read on the pool or a job for the writer.

use super::{accounts, consultations, devices, messages, rows, wallet, SqliteStore};
use crate::error::Result;
use crate::state::Action;
use crate::store::*;
use async_trait::async_trait;
use tara_protocol::auth::{DeviceInfo, ProfilePatch, UserType};
use tara_protocol::consultations::{
    Consultation, ConsultationStatus, FeedbackRequest, FeedbackResponse,
};
use tara_protocol::customers::{CustomerProfile, CustomerProfileInput};
use tara_protocol::guides::GuideRating;
use tara_protocol::messages::Message;
use tara_protocol::wallet::{LedgerEntry, LedgerKind};
use tara_protocol::{ConsultationId, MediaId, SessionId, UserId};

#[async_trait]
impl Store for SqliteStore {
    async fn user(&self, id: UserId) -> Result<Option<User>> {
        self.read(move |c| rows::load_user(c, id)).await
    }

    async fn user_by_phone(&self, phone: &str, user_type: UserType) -> Result<Option<User>> {
        let phone = phone.to_owned();
        self.read(move |c| accounts::user_by_phone(c, &phone, user_type))
            .await
    }

    async fn ensure_customer(
        &self,
        phone: &str,
        display_name: &str,
        now_ms: i64,
        welcome_credit: i64,
    ) -> Result<User> {
        let (phone, name) = (phone.to_owned(), display_name.to_owned());
        let currency = self.tariff.currency.clone();
        self.write(move |c, _| {
            let (user, created) = accounts::ensure_customer(c, &phone, &name, now_ms)?;
            if created && welcome_credit > 0 {
                let refs = wallet::Refs {
                    note: Some("Welcome credit"),
                    ..wallet::Refs::default()
                };
                wallet::post(
                    c,
                    user.id,
                    LedgerKind::Adjustment,
                    welcome_credit,
                    refs,
                    now_ms,
                    &currency,
                )?;
            }
            Ok(user)
        })
        .await
    }

    async fn add_guide(&self, guide: NewGuide, now_ms: i64) -> Result<UserId> {
        self.write(move |c, _| accounts::add_guide(c, &guide, now_ms))
            .await
    }

    async fn update_profile(&self, id: UserId, patch: ProfilePatch) -> Result<User> {
        self.write(move |c, _| accounts::update_profile(c, id, &patch))
            .await
    }

    async fn set_last_seen(&self, id: UserId, at_ms: i64) -> Result<()> {
        self.write(move |c, _| {
            c.execute(
                "UPDATE users SET last_seen_at = ?1 WHERE id = ?2",
                rusqlite::params![at_ms, id.0],
            )?;
            Ok(())
        })
        .await
    }

    async fn otp_times(&self, phone: &str, since_ms: i64) -> Result<Vec<i64>> {
        let phone = phone.to_owned();
        self.read(move |c| accounts::otp_times(c, &phone, since_ms))
            .await
    }

    async fn insert_otp(&self, record: OtpRecord) -> Result<()> {
        self.write(move |c, _| accounts::insert_otp(c, &record))
            .await
    }

    async fn delete_otp(&self, request_id: &str) -> Result<()> {
        let rid = request_id.to_owned();
        self.write(move |c, _| {
            c.execute("DELETE FROM otp_requests WHERE request_id = ?1", [rid])?;
            Ok(())
        })
        .await
    }

    async fn check_otp(
        &self,
        request_id: &str,
        phone: &str,
        user_type: UserType,
        code_hash: Vec<u8>,
        now_ms: i64,
        max_attempts: u32,
    ) -> Result<OtpOutcome> {
        let (rid, phone) = (request_id.to_owned(), phone.to_owned());
        self.write(move |c, _| {
            accounts::check_otp(c, &rid, &phone, user_type, &code_hash, now_ms, max_attempts)
        })
        .await
    }

    async fn create_session(
        &self,
        user: UserId,
        device: DeviceInfo,
        refresh_hash: Vec<u8>,
        max: usize,
        now_ms: i64,
    ) -> Result<(SessionRow, Vec<SessionId>)> {
        self.write(move |c, _| {
            accounts::create_session(c, user, &device, &refresh_hash, max, now_ms)
        })
        .await
    }

    async fn rotate_refresh(
        &self,
        old_hash: Vec<u8>,
        new_hash: Vec<u8>,
        retry_hash: Option<Vec<u8>>,
        now_ms: i64,
    ) -> Result<RefreshOutcome> {
        self.write(move |c, _| {
            accounts::rotate_refresh(c, &old_hash, &new_hash, retry_hash.as_deref(), now_ms)
        })
        .await
    }

    async fn session(&self, id: &SessionId) -> Result<Option<SessionRow>> {
        let id = id.clone();
        self.read(move |c| accounts::session(c, &id)).await
    }

    async fn sessions(&self, user: UserId) -> Result<Vec<SessionRow>> {
        self.read(move |c| accounts::sessions(c, user)).await
    }

    async fn revoke_session(&self, user: UserId, id: &SessionId, now_ms: i64) -> Result<bool> {
        let id = id.clone();
        self.write(move |c, _| accounts::revoke_session(c, user, &id, now_ms))
            .await
    }

    async fn set_push_token(&self, row: PushTokenRow) -> Result<()> {
        self.write(move |c, _| devices::set(c, &row)).await
    }

    async fn delete_session_push_token(&self, session: &SessionId) -> Result<bool> {
        let session = session.clone();
        self.write(move |c, _| devices::delete_for_session(c, &session))
            .await
    }

    async fn delete_push_token(&self, user: Option<UserId>, token: &str) -> Result<bool> {
        let token = token.to_owned();
        self.write(move |c, _| devices::delete_token(c, user, &token))
            .await
    }

    async fn push_tokens(&self, user: UserId) -> Result<Vec<PushTokenRow>> {
        self.read(move |c| devices::for_user(c, user)).await
    }

    async fn guides(&self, after: Option<UserId>, limit: usize) -> Result<Vec<GuideRow>> {
        self.read(move |c| accounts::guides(c, after, limit)).await
    }

    async fn guide(&self, id: UserId) -> Result<Option<GuideRow>> {
        self.read(move |c| accounts::guide(c, id)).await
    }

    async fn set_guide_available(&self, id: UserId, available: bool) -> Result<()> {
        self.write(move |c, _| {
            c.execute(
                "UPDATE guides SET available = ?1 WHERE user_id = ?2",
                rusqlite::params![available, id.0],
            )?;
            Ok(())
        })
        .await
    }

    async fn guide_ratings(
        &self,
        guide: UserId,
        cursor: Option<(i64, ConsultationId)>,
        limit: usize,
    ) -> Result<Vec<GuideRating>> {
        self.read(move |c| consultations::guide_ratings(c, guide, cursor, limit))
            .await
    }

    async fn profiles(&self, customer: UserId) -> Result<Vec<CustomerProfile>> {
        self.read(move |c| accounts::profiles(c, customer)).await
    }

    async fn save_primary_profile(
        &self,
        customer: UserId,
        input: CustomerProfileInput,
        now_ms: i64,
    ) -> Result<CustomerProfile> {
        self.write(move |c, _| accounts::save_profile(c, customer, &input, true, now_ms))
            .await
    }

    async fn add_profile(
        &self,
        customer: UserId,
        input: CustomerProfileInput,
        now_ms: i64,
    ) -> Result<CustomerProfile> {
        self.write(move |c, _| accounts::save_profile(c, customer, &input, false, now_ms))
            .await
    }

    async fn profile(&self, profile_id: i64) -> Result<Option<CustomerProfile>> {
        self.read(move |c| accounts::profile(c, profile_id)).await
    }

    async fn create_consultation(&self, new: NewConsultation) -> Result<Consultation> {
        let minute_ms = self.tariff.minute_ms;
        self.write(move |c, _| consultations::create(c, &new, minute_ms))
            .await
    }

    async fn consultation(&self, id: &ConsultationId) -> Result<Option<Consultation>> {
        let id = id.clone();
        self.read(move |c| rows::load_consultation(c, id.as_str()))
            .await
    }

    async fn transition(
        &self,
        id: &ConsultationId,
        action: Action,
        actor: Actor,
        now_ms: i64,
    ) -> Result<Transitioned> {
        let id = id.clone();
        let tariff = self.tariff.clone();
        self.write(move |c, committed| {
            consultations::transition(c, &id, &action, actor, now_ms, &tariff, committed)
        })
        .await
    }

    async fn participants(&self, id: &ConsultationId) -> Result<Vec<ParticipantRow>> {
        let id = id.clone();
        self.read(move |c| consultations::participants(c, &id))
            .await
    }

    async fn active_consultations(&self, user: UserId) -> Result<Vec<Consultation>> {
        self.read(move |c| consultations::active(c, user)).await
    }

    async fn requested_consultations(&self) -> Result<Vec<Consultation>> {
        self.read(|c| consultations::in_state(c, ConsultationStatus::Requested))
            .await
    }

    async fn running_consultations(&self) -> Result<Vec<Consultation>> {
        self.read(|c| consultations::in_state(c, ConsultationStatus::InProgress))
            .await
    }

    async fn chat_list(
        &self,
        user: UserId,
        cursor: Option<(i64, ConsultationId)>,
        limit: usize,
    ) -> Result<Vec<ChatRow>> {
        self.read(move |c| consultations::chat_list(c, user, cursor, limit))
            .await
    }

    async fn add_feedback(
        &self,
        id: &ConsultationId,
        customer: UserId,
        feedback: FeedbackRequest,
        now_ms: i64,
    ) -> Result<FeedbackResponse> {
        let id = id.clone();
        self.write(move |c, _| consultations::feedback(c, &id, customer, &feedback, now_ms))
            .await
    }

    async fn queue_message(
        &self,
        new: NewMessage,
        now_ms: i64,
        admit: Admission,
    ) -> Result<PendingAppend> {
        // Hot path: `append` checks everything before its first write, so no savepoint.
        let chain = new.chain.clone();
        let rx = self
            .queue_direct(
                move |c, committed| messages::append(c, &new, now_ms, admit, committed),
                chain,
            )
            .await?;
        Ok(PendingAppend::new(rx))
    }

    async fn history_for(
        &self,
        id: &ConsultationId,
        user: UserId,
        range: HistoryRange,
        limit: usize,
    ) -> Result<(Vec<Message>, bool)> {
        let id = id.clone();
        self.read(move |c| {
            messages::check_participant(c, &id, user)?;
            messages::history(c, &id, range, limit)
        })
        .await
    }

    async fn messages(
        &self,
        id: &ConsultationId,
        range: HistoryRange,
        limit: usize,
    ) -> Result<(Vec<Message>, bool)> {
        let id = id.clone();
        self.read(move |c| messages::history(c, &id, range, limit))
            .await
    }

    async fn mark(
        &self,
        id: &ConsultationId,
        user: UserId,
        mark: Mark,
        up_to: i64,
    ) -> Result<Progress> {
        let id = id.clone();
        self.write(move |c, _| messages::mark(c, &id, user, mark, up_to))
            .await
    }

    async fn insert_media(&self, media: MediaRow) -> Result<MediaRow> {
        self.write(move |c, _| messages::insert_media(c, &media))
            .await
    }

    async fn media(&self, id: &MediaId) -> Result<Option<MediaRow>> {
        let id = id.clone();
        self.read(move |c| messages::media(c, &id)).await
    }

    async fn media_by_key(&self, uploader: UserId, key: &str) -> Result<Option<MediaRow>> {
        let key = key.to_owned();
        self.read(move |c| messages::media_by_key(c, uploader, &key))
            .await
    }

    async fn touch_consultation(&self, id: &ConsultationId, at_ms: i64) -> Result<()> {
        let id = id.clone();
        self.write(move |c, _| consultations::touch(c, &id, at_ms))
            .await
    }

    async fn last_active(&self, id: &ConsultationId) -> Result<Option<i64>> {
        let id = id.clone();
        self.read(move |c| consultations::last_active(c, &id)).await
    }

    async fn set_guide_away(
        &self,
        id: &ConsultationId,
        since_ms: Option<i64>,
    ) -> Result<Option<Consultation>> {
        let id = id.clone();
        self.write(move |c, _| consultations::set_guide_away(c, &id, since_ms))
            .await
    }

    async fn wallet(&self, user: UserId) -> Result<WalletRow> {
        let currency = self.tariff.currency.clone();
        self.read(move |c| wallet::wallet(c, user, &currency)).await
    }

    async fn ledger(
        &self,
        user: UserId,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, LedgerEntry)>> {
        self.read(move |c| wallet::ledger(c, user, before, limit))
            .await
    }

    async fn credit(&self, credit: Credit) -> Result<WalletRow> {
        let currency = self.tariff.currency.clone();
        self.write(move |c, _| wallet::credit(c, &credit, &currency))
            .await
    }

    async fn open_payment(&self, payment: NewPayment) -> Result<Opened> {
        let currency = self.tariff.currency.clone();
        self.write(move |c, _| wallet::open_payment(c, &payment, &currency))
            .await
    }

    async fn payment(&self, payment_id: &str) -> Result<Option<PaymentRow>> {
        let id = payment_id.to_owned();
        self.read(move |c| wallet::payment(c, &id)).await
    }

    async fn capture_payment(&self, payment_id: &str, amount: i64, now_ms: i64) -> Result<Settled> {
        let id = payment_id.to_owned();
        self.write(move |c, _| wallet::capture(c, &id, amount, now_ms))
            .await
    }

    async fn fail_payment(&self, payment_id: &str, now_ms: i64) -> Result<Settled> {
        let id = payment_id.to_owned();
        self.write(move |c, _| wallet::fail(c, &id, now_ms)).await
    }

    async fn earnings(
        &self,
        guide: UserId,
        before: Option<i64>,
        limit: usize,
        since_ms: i64,
    ) -> Result<EarningsPage> {
        self.read(move |c| wallet::earnings(c, guide, before, limit, since_ms))
            .await
    }

    async fn wallet_notices(&self, after: Option<i64>) -> Result<(i64, Vec<UserId>)> {
        self.read(move |c| wallet::notices(c, after)).await
    }

    async fn ledger_audit(&self) -> Result<Vec<(UserId, i64, i64)>> {
        self.read(wallet::audit).await
    }

    async fn flush(&self) -> Result<()> {
        self.write(|_, _| Ok(())).await
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<()> {
        self.read(|c| {
            c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })?;
            Ok(())
        })
        .await?;
        // The writer thread answers only while it is alive and not wedged on a lock.
        self.write(|_, _| Ok(())).await
    }
}
