-- V009: custom roles managed through the API, tenant admins managing their own tenant's
-- members, and the access audit trail of both.
set local app.scope = 'platform';

-- The permission that lets a tenant's admins manage its members
-- (shared::auth::Permission::TenantMembersManage), given to every tenant's default admin
-- role, as new tenants get it (the default admin role holds every permission).
update tenant_roles
set permissions = array_append(permissions, 'tenant.members.manage')
where role = 'admin' and is_default and not ('tenant.members.manage' = any (permissions));

-- When a role's description or permissions last changed.
alter table tenant_roles add column updated_at timestamptz not null default now();

-- ACCESS AUDIT TRAIL: every change to a tenant's roles and to who holds them, by a super
-- admin (/sa/...) or by a tenant member holding tenant.members.manage
-- (/tenants/{tenant_name}/members...). Append-only for the API: nothing updates or deletes
-- these rows but the tenant's deletion.
--   performed_by / target_username: plain text, no foreign key, so the record keeps the
--     names after the users are deleted (and does not stop their deletion).
--   old_permissions / new_permissions: the role's permissions before and after a role
--     change; for an assignment or a removal, the role's permissions at that moment.
--   reason: free text (why an assignment ended, e.g. the role or the user was deleted).
create table tenant_access_audit_logs (
    id bigint generated always as identity primary key,
    tenant_name text not null references tenants (name) on delete cascade,
    action text not null,
    performed_by text not null,
    target_username text,
    role text not null,
    old_permissions text[],
    new_permissions text[],
    reason text,
    created_at timestamptz not null default now(),
    constraint tenant_access_audit_logs_action check (action in (
        'role_created', 'role_updated', 'role_deleted', 'role_assigned', 'role_removed'
    )),
    constraint tenant_access_audit_logs_target check (
        (action in ('role_assigned', 'role_removed')) = (target_username is not null)
    )
);
create index tenant_access_audit_logs_tenant on tenant_access_audit_logs (tenant_name, id);
create index tenant_access_audit_logs_target
    on tenant_access_audit_logs (tenant_name, target_username, id);

alter table tenant_access_audit_logs enable row level security;
alter table tenant_access_audit_logs force row level security;
create policy tenant_isolation on tenant_access_audit_logs
    using (app_may_see_tenant(tenant_name)) with check (app_may_see_tenant(tenant_name));

-- The API may add and read entries, never rewrite them.
revoke update, delete on tenant_access_audit_logs from offers_api;
