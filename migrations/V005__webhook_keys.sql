-- V005: API keys of delivery providers calling the delivery-status webhook, and the message
-- ids already seen (Standard Webhooks replay protection).

-- WEBHOOK KEYS
-- id: public, embedded in the key (omk_<id>_<secret>) to find its row.
-- key_hash: SHA-256 of the whole key; the key itself is shown once and never stored.
-- signing_secret: the Standard Webhooks secret (whsec_…) when requests must also be signed;
-- HMAC verification needs the secret itself, so it is stored as issued.
create table webhook_keys (
    id uuid primary key,
    name text not null,
    key_hash bytea not null,
    signing_secret text,
    created_by text references users(username) on delete set null,
    created_at timestamptz not null default now(),
    last_used_at timestamptz,
    revoked_at timestamptz,
    constraint webhook_keys_name_length check (char_length(name) between 1 and 100),
    constraint webhook_keys_hash_length check (octet_length(key_hash) = 32)
);

-- WEBHOOK MESSAGES
-- A signed message id is applied once; a replay inside the 5-minute window finds its row and
-- changes nothing. Rows older than the window are purged by the webhook itself.
create table webhook_messages (
    key_id uuid not null references webhook_keys(id) on delete cascade,
    message_id text not null,
    received_at timestamptz not null default now(),
    primary key (key_id, message_id)
);
create index idx_webhook_messages_received_at on webhook_messages (received_at);
