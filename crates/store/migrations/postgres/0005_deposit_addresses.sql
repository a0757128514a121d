-- Each user's deposit address, derived once from the operator's xpub and
-- kept: it stays the user's even if the configured key changes later, and
-- incoming transfers are matched to users by it.
ALTER TABLE users ADD COLUMN deposit_address TEXT;
CREATE UNIQUE INDEX users_deposit_address ON users (deposit_address);
