"""The double's objects as Clerk's JSON, shaped as the published 2026-05-12 specs describe."""

from __future__ import annotations

from typing import Any

from bot.sandbox.clerk.model import (
    FIELDS,
    PARAM,
    STRATEGY,
    Client,
    Identification,
    Instance,
    Session,
    SignIn,
    SignInToken,
    SignUp,
    User,
    Verification,
)


def masked(item: Identification) -> str:
    if item.kind == "email":
        local, _, domain = item.value.partition("@")
        return f"{local[:1]}***@{domain}"
    return f"+*******{item.value[-4:]}"


# -- Frontend API ----------------------------------------------------------------------------


def otp(verification: Verification) -> dict[str, Any]:
    return {
        "object": "verification_otp",
        "status": verification.status,
        "strategy": verification.strategy,
        "attempts": verification.attempts,
        "expire_at": verification.expire_at,
    }


def client(inst: Instance, item: Client) -> dict[str, Any]:
    sign_in = inst.sign_ins.get(item.sign_in_id or "")
    sign_up = inst.sign_ups.get(item.sign_up_id or "")
    sessions = [inst.sessions[s] for s in item.session_ids]
    return {
        "object": "client",
        "id": item.id,
        "sessions": [session(inst, s) for s in sessions if s.status == "active"],
        "sign_in": sign_in_attempt(inst, sign_in) if sign_in else None,
        "sign_up": sign_up_attempt(inst, sign_up) if sign_up else None,
        "last_active_session_id": item.last_active_session_id,
        "last_authentication_strategy": None,
        "cookie_expires_at": None,
        "captcha_bypass": False,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }


def session(inst: Instance, item: Session) -> dict[str, Any]:
    user = inst.users.get(item.user_id)
    identifications = inst.user_identifications(user) if user else []
    return {
        "object": "session",
        "id": item.id,
        "status": item.status,
        "expire_at": item.expire_at,
        "abandon_at": item.abandon_at,
        "last_active_at": item.last_active_at,
        "last_active_organization_id": None,
        "actor": None,
        "public_user_data": {
            "first_name": user.first_name if user else None,
            "last_name": user.last_name if user else None,
            "image_url": "",
            "has_image": False,
            "identifier": identifications[0].value if identifications else "",
            "user_id": item.user_id,
        },
        "factor_verification_age": [0, -1],
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }


def sign_in_attempt(inst: Instance, item: SignIn) -> dict[str, Any]:
    user = inst.users.get(item.user_id)
    if item.verification is not None:
        inst.refresh(item.verification)
    factors = []
    for ident in inst.first_factors(item) if user else ():
        factor = {
            "strategy": STRATEGY[ident.kind],
            "safe_identifier": masked(ident),
            f"{PARAM[ident.kind]}_id": ident.id,
            "primary": ident.id == user.identification_ids[0] if user else False,
        }
        factors.append(factor)
    return {
        "object": "sign_in_attempt",
        "id": item.id,
        "status": item.status,
        "supported_identifiers": ["email_address", "phone_number"],
        "supported_first_factors": factors,
        "supported_second_factors": [{"strategy": "totp"}]
        if item.status == "needs_second_factor"
        else None,
        "first_factor_verification": otp(item.verification) if item.verification else None,
        "second_factor_verification": None,
        "identifier": item.identifier,
        "user_data": {
            "first_name": user.first_name,
            "last_name": user.last_name,
            "image_url": "",
            "has_image": False,
        }
        if user
        else None,
        "created_session_id": item.created_session_id,
        "abandon_at": item.abandon_at,
    }


def sign_up_attempt(inst: Instance, item: SignUp) -> dict[str, Any]:
    param = PARAM[item.kind]
    verification = None
    if item.verification is not None:
        inst.refresh(item.verification)
        verified = item.verification.status == "verified"
        verification = {
            **otp(item.verification),
            "next_action": "" if verified else "needs_attempt",
            "supported_strategies": [STRATEGY[item.kind]],
        }
    else:
        verified = False
    required = sorted({param, *inst.required_fields})
    optional = sorted(set(FIELDS) - inst.required_fields)
    verifications: dict[str, Any] = {
        "email_address": None,
        "phone_number": None,
        "web3_wallet": None,
        "external_account": None,
    }
    verifications[param] = verification
    return {
        "object": "sign_up_attempt",
        "id": item.id,
        "status": item.status,
        "required_fields": required,
        "optional_fields": optional,
        "missing_fields": inst.missing_fields(item) if item.status != "complete" else [],
        "unverified_fields": [] if verified else [param],
        "verifications": verifications,
        "username": item.fields.get("username"),
        "email_address": item.value if item.kind == "email" else None,
        "phone_number": item.value if item.kind == "phone" else None,
        "web3_wallet": None,
        "password_enabled": False,
        "first_name": item.fields.get("first_name"),
        "last_name": item.fields.get("last_name"),
        "unsafe_metadata": {},
        "public_metadata": {},
        "custom_action": False,
        "external_id": None,
        "created_session_id": item.created_session_id,
        "created_user_id": item.created_user_id,
        "abandon_at": item.abandon_at,
        "legal_accepted_at": None,
    }


# -- Backend API -----------------------------------------------------------------------------


def identification_verification(item: Identification) -> dict[str, Any]:
    if item.status == "verified" and not item.verified_by_code:
        return {
            "object": "verification_admin",
            "status": "verified",
            "strategy": "admin",
            "attempts": None,
            "expire_at": None,
        }
    if item.verification is not None:
        return otp(item.verification)
    return {
        "object": "verification_otp",
        "status": "verified" if item.status == "verified" else "unverified",
        "strategy": STRATEGY[item.kind],
        "attempts": None,
        "expire_at": None,
    }


def identification(item: Identification) -> dict[str, Any]:
    common = {
        "id": item.id,
        "reserved": item.status == "reserved",
        "verification": identification_verification(item),
        "linked_to": [],
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }
    if item.kind == "email":
        return {"object": "email_address", "email_address": item.value, **common}
    return {
        "object": "phone_number",
        "phone_number": item.value,
        "reserved_for_second_factor": False,
        "default_second_factor": False,
        "backup_codes": None,
        **common,
    }


def user(inst: Instance, item: User) -> dict[str, Any]:
    identifications = inst.user_identifications(item)
    emails = [i for i in identifications if i.kind == "email"]
    phones = [i for i in identifications if i.kind == "phone"]
    return {
        "id": item.id,
        "object": "user",
        "username": item.username,
        "first_name": item.first_name,
        "last_name": item.last_name,
        "image_url": "",
        "has_image": False,
        "primary_email_address_id": emails[0].id if emails else None,
        "primary_phone_number_id": phones[0].id if phones else None,
        "primary_web3_wallet_id": None,
        "password_enabled": False,
        "two_factor_enabled": item.second_factor,
        "totp_enabled": item.second_factor,
        "backup_code_enabled": False,
        "email_addresses": [identification(i) for i in emails],
        "phone_numbers": [identification(i) for i in phones],
        "web3_wallets": [],
        "passkeys": [],
        "external_accounts": [],
        "saml_accounts": [],
        "enterprise_accounts": [],
        "public_metadata": item.public_metadata,
        "private_metadata": item.private_metadata,
        "unsafe_metadata": item.unsafe_metadata,
        "external_id": None,
        "last_sign_in_at": item.last_sign_in_at,
        "banned": item.banned,
        "locked": inst.is_locked(item),
        "lockout_expires_in_seconds": inst.lockout_left(item) if inst.is_locked(item) else None,
        "verification_attempts_remaining": None,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
        "delete_self_enabled": True,
        "create_organization_enabled": False,
        "last_active_at": item.last_active_at,
        "mfa_enabled_at": None,
        "mfa_disabled_at": None,
        "legal_accepted_at": None,
    }


def backend_session(item: Session) -> dict[str, Any]:
    return {
        "object": "session",
        "id": item.id,
        "user_id": item.user_id,
        "client_id": item.client_id,
        "actor": None,
        "status": item.status,
        "last_active_organization_id": None,
        "last_active_at": item.last_active_at,
        "expire_at": item.expire_at,
        "abandon_at": item.abandon_at,
        "updated_at": item.updated_at,
        "created_at": item.created_at,
        "tasks": None,
    }


def verification(item: Verification) -> dict[str, Any]:
    return {
        "id": item.id,
        "object": "verification_otp",
        "status": item.status,
        "strategy": item.strategy,
        "attempts": item.attempts,
        "expire_at": item.expire_at,
        "channel": "sms" if item.kind == "phone" else None,
    }


def sign_in_token(item: SignInToken, *, with_token: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "object": "sign_in_token",
        "id": item.id,
        "status": item.status,
        "user_id": item.user_id,
        "url": None,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }
    if with_token:
        body["token"] = item.token
    return body


def deleted(object_name: str, object_id: str) -> dict[str, Any]:
    return {"object": object_name, "id": object_id, "deleted": True}
