"""The initial schema (kept in step with tables.py until the first release).

Revision ID: 0001
Revises: 
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tidings.store.tables
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('api_tokens',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=400), nullable=False),
    sa.Column('actor_role', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=48), nullable=False),
    sa.Column('subject', sa.String(length=400), nullable=False),
    sa.Column('detail', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_actor_action_at', ['actor', 'action', 'at'], unique=False)

    op.create_table('customer_imports',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=True),
    sa.Column('data', sa.LargeBinary(), nullable=True),
    sa.Column('encoding', sa.String(length=32), nullable=False),
    sa.Column('delimiter', sa.String(length=1), nullable=False),
    sa.Column('mapping', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('total_lines', sa.Integer(), server_default='0', nullable=False),
    sa.Column('done_lines', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created', sa.Integer(), server_default='0', nullable=False),
    sa.Column('updated', sa.Integer(), server_default='0', nullable=False),
    sa.Column('errors', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('error_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('failure', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=320), nullable=False),
    sa.Column('started_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('created_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_imports'))
    )
    op.create_table('customers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('first_name', sa.String(length=255), nullable=True),
    sa.Column('last_name', sa.String(length=255), nullable=True),
    sa.Column('attributes', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('email_status', sa.String(length=16), server_default='subscribed', nullable=False),
    sa.Column('sms_status', sa.String(length=16), server_default='subscribed', nullable=False),
    sa.Column('soft_bounces', sa.Integer(), server_default='0', nullable=False),
    sa.Column('orders_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('orders_total', sa.Numeric(precision=14, scale=2), server_default='0', nullable=False),
    sa.Column('last_order_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('created_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers')),
    sa.UniqueConstraint('email', name=op.f('uq_customers_email')),
    sa.UniqueConstraint('external_id', name=op.f('uq_customers_external_id')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.create_index('ix_customers_email_status_id', ['email_status', 'id'], unique=False)
        batch_op.create_index('ix_customers_sms_status_id', ['sms_status', 'id'], unique=False)

    op.create_table('domains',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('domain', sa.String(length=253), nullable=False),
    sa.Column('selector', sa.String(length=63), nullable=False),
    sa.Column('dkim_private_key', sa.Text(), nullable=False),
    sa.Column('dkim_public_key', sa.Text(), nullable=False),
    sa.Column('verified', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('checks', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.Column('verified_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('created_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_domains')),
    sa.UniqueConstraint('domain', name=op.f('uq_domains_domain'))
    )
    op.create_table('erased_contacts',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_erased_contacts'))
    )
    op.create_table('feedback_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('message_id', sa.BigInteger(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('created_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback_events'))
    )
    with op.batch_alter_table('feedback_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feedback_events_message_id'), ['message_id'], unique=False)

    op.create_table('media',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('content_type', sa.String(length=32), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_media'))
    )
    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_media_sha256'), ['sha256'], unique=False)

    op.create_table('meta',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_meta'))
    )
    op.create_table('orders',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('total', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('utm', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.Column('mailing_id', sa.BigInteger(), nullable=True),
    sa.Column('message_id', sa.BigInteger(), nullable=True),
    sa.Column('ordered_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.Column('created_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('external_id', name=op.f('uq_orders_external_id'))
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_orders_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_mailing_id'), ['mailing_id'], unique=False)

    op.create_table('quotas',
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('balance', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('channel', name=op.f('pk_quotas'))
    )
    op.create_table('segments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('rules', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_segments'))
    )
    op.create_table('shop_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('from_email', sa.String(length=320), nullable=True),
    sa.Column('from_name', sa.String(length=255), nullable=True),
    sa.Column('postal_address', sa.Text(), nullable=True),
    sa.Column('logo', sa.LargeBinary(), nullable=True),
    sa.Column('logo_type', sa.String(length=32), nullable=True),
    sa.Column('updated_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shop_settings'))
    )
    op.create_table('sign_in_failures',
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failed_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.Column('locked_until', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('email', name=op.f('pk_sign_in_failures'))
    )
    with op.batch_alter_table('sign_in_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sign_in_failures_last_failed_at'), ['last_failed_at'], unique=False)

    op.create_table('sms_receipts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('remote_id', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('error', sa.String(length=64), nullable=True),
    sa.Column('source', sa.String(length=8), nullable=False),
    sa.Column('received_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sms_receipts'))
    )
    with op.batch_alter_table('sms_receipts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sms_receipts_received_at'), ['received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_sms_receipts_remote_id'), ['remote_id'], unique=False)

    op.create_table('suppressions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('created_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suppressions')),
    sa.UniqueConstraint('address', name=op.f('uq_suppressions_address'))
    )
    op.create_table('templates',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('html', sa.Text(), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('editor', sa.String(length=8), server_default='html', nullable=False),
    sa.Column('blocks', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.Column('preheader', sa.Text(), nullable=True),
    sa.Column('created_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_templates'))
    )
    op.create_table('test_addresses',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('added_by', sa.String(length=400), nullable=False),
    sa.Column('created_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_test_addresses')),
    sa.UniqueConstraint('address', name=op.f('uq_test_addresses_address'))
    )
    op.create_table('users',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )
    op.create_table('mailings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('segment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('template_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('from_email', sa.String(length=320), nullable=True),
    sa.Column('from_name', sa.String(length=255), nullable=True),
    sa.Column('reply_to', sa.String(length=320), nullable=True),
    sa.Column('conversion', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('send_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('interrupt_code', sa.String(length=32), nullable=True),
    sa.Column('interrupt_message', sa.Text(), nullable=True),
    sa.Column('cancel_requested_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('chain_id', sa.BigInteger(), nullable=True),
    sa.Column('step', sa.Integer(), server_default='1', nullable=False),
    sa.Column('delay_hours', sa.Float(), nullable=True),
    sa.Column('condition', sa.String(length=16), nullable=True),
    sa.Column('started_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('guard_sent', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('guard_failed', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('guard_bounced', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('guard_complained', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('delivered_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('opened_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('clicked_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('unsubscribed_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('complained_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('hard_bounced_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('soft_bounced_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('orders_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('revenue', sa.Numeric(precision=16, scale=2), server_default='0', nullable=False),
    sa.Column('undelivered_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('expired_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('rejected_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('quiet_hours', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_mailings_segment_id_segments')),
    sa.ForeignKeyConstraint(['template_id'], ['templates.id'], name=op.f('fk_mailings_template_id_templates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mailings'))
    )
    with op.batch_alter_table('mailings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mailings_status'), ['status'], unique=False)

    op.create_table('password_resets',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.Column('used_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_password_resets_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_password_resets')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_password_resets_token_hash'))
    )
    with op.batch_alter_table('password_resets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_password_resets_user_id'), ['user_id'], unique=False)

    op.create_table('sessions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_sessions_token_hash'))
    )
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sessions_user_id'), ['user_id'], unique=False)

    op.create_table('messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('mailing_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=True),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('skip_reason', sa.String(length=16), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('smtp_code', sa.Integer(), nullable=True),
    sa.Column('sent_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('opened_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('clicked_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('bounce', sa.String(length=4), nullable=True),
    sa.Column('complained_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('unsubscribed_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('not_before', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('receipt', sa.String(length=12), nullable=True),
    sa.Column('receipt_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['mailing_id'], ['mailings.id'], name=op.f('fk_messages_mailing_id_mailings'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages')),
    sa.UniqueConstraint('mailing_id', 'customer_id', name=op.f('uq_messages_mailing_id_customer_id'))
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_customer', ['customer_id'], unique=False)
        batch_op.create_index('ix_messages_mailing_status', ['mailing_id', 'status', 'id'], unique=False)

    op.create_table('packages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('mailing_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('first_message_id', sa.BigInteger(), nullable=False),
    sa.Column('last_message_id', sa.BigInteger(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('reserved', sa.Integer(), server_default='0', nullable=False),
    sa.Column('started_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('sent_count', sa.Integer(), nullable=True),
    sa.Column('failed_count', sa.Integer(), nullable=True),
    sa.Column('unknown_count', sa.Integer(), nullable=True),
    sa.Column('queued_count', sa.Integer(), nullable=True),
    sa.Column('not_before', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['mailing_id'], ['mailings.id'], name=op.f('fk_packages_mailing_id_mailings'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_packages')),
    sa.UniqueConstraint('mailing_id', 'seq', name=op.f('uq_packages_mailing_id_seq'))
    )
    with op.batch_alter_table('packages', schema=None) as batch_op:
        batch_op.create_index('ix_packages_status_mailing', ['status', 'mailing_id'], unique=False)

    op.create_table('sms_links',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('mailing_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('url_hash', sa.String(length=64), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['mailing_id'], ['mailings.id'], name=op.f('fk_sms_links_mailing_id_mailings'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sms_links')),
    sa.UniqueConstraint('mailing_id', 'url_hash', name=op.f('uq_sms_links_mailing_id_url_hash'))
    )
    op.create_table('message_parts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('part', sa.Integer(), nullable=False),
    sa.Column('remote_id', sa.String(length=64), nullable=False),
    sa.Column('delivery', sa.String(length=12), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=True),
    sa.Column('error', sa.String(length=64), nullable=True),
    sa.Column('receipt_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('created_at', tidings.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_message_parts_message_id_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_parts')),
    sa.UniqueConstraint('message_id', 'part', name=op.f('uq_message_parts_message_id_part'))
    )
    with op.batch_alter_table('message_parts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_parts_remote_id'), ['remote_id'], unique=False)

    


def downgrade() -> None:
    
    with op.batch_alter_table('message_parts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_parts_remote_id'))

    op.drop_table('message_parts')
    op.drop_table('sms_links')
    with op.batch_alter_table('packages', schema=None) as batch_op:
        batch_op.drop_index('ix_packages_status_mailing')

    op.drop_table('packages')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_mailing_status')
        batch_op.drop_index('ix_messages_customer')

    op.drop_table('messages')
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sessions_user_id'))

    op.drop_table('sessions')
    with op.batch_alter_table('password_resets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_password_resets_user_id'))

    op.drop_table('password_resets')
    with op.batch_alter_table('mailings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mailings_status'))

    op.drop_table('mailings')
    op.drop_table('users')
    op.drop_table('test_addresses')
    op.drop_table('templates')
    op.drop_table('suppressions')
    with op.batch_alter_table('sms_receipts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sms_receipts_remote_id'))
        batch_op.drop_index(batch_op.f('ix_sms_receipts_received_at'))

    op.drop_table('sms_receipts')
    with op.batch_alter_table('sign_in_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sign_in_failures_last_failed_at'))

    op.drop_table('sign_in_failures')
    op.drop_table('shop_settings')
    op.drop_table('segments')
    op.drop_table('quotas')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_orders_mailing_id'))
        batch_op.drop_index(batch_op.f('ix_orders_customer_id'))

    op.drop_table('orders')
    op.drop_table('meta')
    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_media_sha256'))

    op.drop_table('media')
    with op.batch_alter_table('feedback_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feedback_events_message_id'))

    op.drop_table('feedback_events')
    op.drop_table('erased_contacts')
    op.drop_table('domains')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_sms_status_id')
        batch_op.drop_index('ix_customers_email_status_id')

    op.drop_table('customers')
    op.drop_table('customer_imports')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_actor_action_at')

    op.drop_table('audit_log')
    op.drop_table('api_tokens')
    
