-- Third review, finding 7 (defence in depth): the tenant login role (DATABASE_URL's, a
-- member of offers_api only) could write the platform's shared tables: make itself super
-- admin, change any tenant's settings, lift the contact cap. No injection was found, but
-- one would have reached that far. The shared tables are now written through the platform
-- role alone (offers_platform, DATABASE_PLATFORM_URL's; it keeps offers_api's rights on the
-- tenant tables through its membership):
--
--   users, tenants, contact_policy, customer_imports, login_failures, customers,
--   customer_consents, customer_consent_history (insert only, as before)
--
-- The tenant role keeps reading them (tenant routes read a tenant's rules, the policy, the
-- customers and their consents). One column stays writable for it: `users.created_at`,
-- because a member manager's check that the target is no super admin locks the user's row
-- (`select … for share` needs the UPDATE privilege on some column); nothing reads that
-- column for authorisation. docs/security.md lists what the tenant role may write, and
-- tests/api/security.rs checks every table against that list.
--
-- New tables get offers_api's full rights by V007's default privileges: a new shared table
-- must revoke them as this migration does.

revoke insert, update, delete, truncate on
    users, tenants, contact_policy, customer_imports, login_failures, customers,
    customer_consents, customer_consent_history
from offers_api;

grant insert, update, delete on
    users, tenants, contact_policy, customer_imports, login_failures, customers,
    customer_consents
to offers_platform;
grant insert on customer_consent_history to offers_platform;

grant update (created_at) on users to offers_api;
