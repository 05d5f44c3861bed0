"""Code delivery over real protocols: SMTP to an aiosmtpd server, SMS to the Twilio stand-in."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import pytest

from bot.auth.delivery import (
    DeliveryChannel,
    DeliveryError,
    LogChannel,
    SmtpChannel,
    TwilioChannel,
    code_message,
    sms_message,
)
from bot.identifiers import Identifier, parse_identifier
from bot.sandbox.twilio import TwilioStandIn, sms_segments
from tests.support import self_signed_tls, unused_port
from tests.support.mail import SmtpSink, TlsMode

SID = "AC" + "5e" * 16
TOKEN = "twilio-test-token"
FROM = "+15005550006"
SENDER = "Acme <no-reply@acme.example>"
CODE = "482913"

JANE = parse_identifier("Jane.Doe@Example.com")
JANE_PHONE = parse_identifier("+44 7400 123456")


async def send(channel: DeliveryChannel, to: Identifier, code: str = CODE) -> None:
    await channel.send_code(to, code, app_name="Acme", ttl_minutes=10)


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    async with SmtpSink() as running:
        yield running


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioStandIn]:
    async with TwilioStandIn(SID, TOKEN) as running:
        yield running


@pytest.fixture
async def sms(twilio: TwilioStandIn) -> AsyncIterator[TwilioChannel]:
    channel = TwilioChannel(SID, TOKEN, FROM, api_url=twilio.url)
    yield channel
    await channel.aclose()


# Loopback tests log in without TLS on purpose; aiosmtpd warns that a real server shouldn't.
plain_auth = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(record.getMessage() for record in caplog.records)


# --- Email -----------------------------------------------------------------------------------


async def test_email_carries_the_code_the_expiry_and_the_warning(sink: SmtpSink) -> None:
    await send(SmtpChannel(sink.url, SENDER), JANE)

    message = await sink.wait_for_message("jane.doe@example.com")
    assert message["Subject"] == "Your Acme code is 482913"
    assert message["From"] == SENDER
    assert message["To"] == "jane.doe@example.com"
    body = message.get_content()
    assert body.startswith(
        "Your Acme code is 482913. It expires in 10 minutes. "
        "Type it only in the Acme sign-in chat, and never share it: nobody from "
        "Acme or Telegram will ever ask you for it."
    )
    assert "If you didn't ask for this code, you can ignore this email." in body
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@acme.example>")
    assert parsedate_to_datetime(message["Date"]) > datetime.now(UTC) - timedelta(minutes=1)


async def test_email_never_reads_like_a_telegram_login_code(sink: SmtpSink) -> None:
    await send(SmtpChannel(sink.url, SENDER), JANE)

    message = await sink.wait_for_message(JANE.value)
    assert "Telegram" not in message["Subject"]
    body = message.get_content()
    assert "Telegram code" not in body
    assert "login code" not in body.lower()
    # Telegram is named once: as someone who will never ask for the code.
    assert body.count("Telegram") == 1
    assert "nobody from Acme or Telegram will ever ask you for it" in body


async def test_each_resend_is_a_new_email_waited_for_in_turn(sink: SmtpSink) -> None:
    channel = SmtpChannel(sink.url, SENDER)
    waiting = asyncio.create_task(sink.wait_for_message(JANE.value))
    await send(channel, JANE, "111111")
    await send(channel, JANE, "222222")

    assert "111111" in (await waiting)["Subject"]
    assert "222222" in (await sink.wait_for_message(JANE.value))["Subject"]
    assert len(sink.messages) == 2


async def test_internationalised_domain_goes_out_in_ascii() -> None:
    async with SmtpSink() as sink:
        to = parse_identifier("jane@bücher.example")
        await send(SmtpChannel(sink.url, SENDER), to)
        message = await sink.wait_for_message("jane@xn--bcher-kva.example")
    assert CODE in message.get_content()


@plain_auth
async def test_smtp_credentials_are_percent_decoded() -> None:
    async with SmtpSink(username="mailer@acme.example", password="p@ss:w/rd%") as sink:
        url = f"smtp://mailer%40acme.example:p%40ss%3Aw%2Frd%25@127.0.0.1:{sink.port}"
        await send(SmtpChannel(url, SENDER), JANE)
        await sink.wait_for_message(JANE.value)
        assert sink.logins == [("mailer@acme.example", "p@ss:w/rd%")]


@plain_auth
async def test_wrong_smtp_password_is_a_permanent_failure() -> None:
    async with SmtpSink(username="mailer", password="right") as sink:
        url = f"smtp://mailer:wrong@127.0.0.1:{sink.port}"
        with pytest.raises(DeliveryError) as failed:
            await send(SmtpChannel(url, SENDER), JANE)
        assert sink.messages == []
    assert failed.value.temporary is False
    assert "credentials" in str(failed.value)


async def test_smtp_server_down_is_a_temporary_failure() -> None:
    channel = SmtpChannel(f"smtp://127.0.0.1:{unused_port()}", SENDER)
    with pytest.raises(DeliveryError) as failed:
        await send(channel, JANE)
    assert failed.value.temporary is True


@pytest.mark.parametrize(
    ("reply", "temporary"),
    [("550 5.1.1 <jane.doe@example.com>: no such user", False), ("451 4.7.1 Try later", True)],
)
async def test_refused_recipient(sink: SmtpSink, reply: str, temporary: bool) -> None:
    sink.refuse(JANE.value, reply)
    with pytest.raises(DeliveryError) as failed:
        await send(SmtpChannel(sink.url, SENDER), JANE)
    assert failed.value.temporary is temporary
    assert failed.value.provider_code == int(reply[:3])
    # The server quoted the address back; the error (which gets logged) shows it masked.
    assert JANE.value not in str(failed.value)


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
async def test_smtp_over_tls(tmp_path: Path, mode: TlsMode) -> None:
    server_tls, client_tls = self_signed_tls(tmp_path)
    async with SmtpSink(tls=mode, tls_context=server_tls) as sink:
        assert sink.url.startswith("smtps://" if mode == "implicit" else "smtp://")
        await send(SmtpChannel(sink.url, SENDER, tls_context=client_tls), JANE)
        message = await sink.wait_for_message(JANE.value)
    assert CODE in message.get_content()


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
async def test_untrusted_smtp_certificate_is_a_permanent_failure(
    tmp_path: Path, mode: TlsMode
) -> None:
    server_tls, _ = self_signed_tls(tmp_path)
    async with SmtpSink(tls=mode, tls_context=server_tls) as sink:
        with pytest.raises(DeliveryError) as failed:
            await send(SmtpChannel(sink.url, SENDER), JANE)
        assert sink.messages == []
    assert failed.value.temporary is False
    assert "certificate" in str(failed.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:25",
        "smtp://",
        "smtp://127.0.0.1:25?tls=yes",
        "smtp://127.0.0.1:25?starttls=maybe",
        "smtps://127.0.0.1:465?starttls=true",
        "smtp://127.0.0.1:notaport",
        "smtp://127.0.0.1:70000",
        "smtp://127.0.0.1:25?starttls=true&starttls=false",
        "smtp://127.0.0.1:25/relay",
    ],
)
def test_bad_smtp_urls_are_refused_at_start(url: str) -> None:
    with pytest.raises(ValueError):
        SmtpChannel(url, SENDER)


@pytest.mark.parametrize(
    "sender",
    ["", "Acme", "no-reply", "Acme <bad>", "Acme <bad@>", "a@acme.example, b@acme.example"],
)
def test_bad_sender_is_refused_at_start(sender: str) -> None:
    with pytest.raises(ValueError):
        SmtpChannel("smtp://127.0.0.1:25", sender)


def test_password_over_plain_smtp_to_another_machine_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.auth.delivery"):
        SmtpChannel("smtp://mailer:s3cret@127.0.0.1:25", SENDER)
        SmtpChannel("smtps://mailer:s3cret@smtp.example.com", SENDER)
        SmtpChannel("smtp://mailer:s3cret@smtp.example.com:587?starttls=true", SENDER)
        assert caplog.records == []
        SmtpChannel("smtp://mailer:s3cret@smtp.example.com:587", SENDER)
    assert "unencrypted" in caplog.text
    assert "s3cret" not in caplog.text


async def test_email_channel_takes_email_addresses_only(sink: SmtpSink) -> None:
    with pytest.raises(ValueError):
        await send(SmtpChannel(sink.url, SENDER), JANE_PHONE)


async def test_email_delivery_logs_neither_code_nor_address(
    sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await send(SmtpChannel(sink.url, SENDER), JANE)
    await sink.wait_for_message(JANE.value)

    lines = logged(caplog)
    assert JANE.masked in lines
    assert CODE not in lines
    assert JANE.value not in lines


# --- SMS -------------------------------------------------------------------------------------


async def test_sms_arrives_code_first(twilio: TwilioStandIn, sms: TwilioChannel) -> None:
    await send(sms, JANE_PHONE)

    message = await twilio.wait_for_message("+447400123456")
    assert message.from_ == FROM
    assert message.body.startswith("482913 is your Acme code.")
    assert "It expires in 10 minutes." in message.body
    assert "nobody from Acme or Telegram will ever ask for it." in message.body
    assert message.num_segments == 1


async def test_wrong_twilio_credentials_are_a_permanent_failure(twilio: TwilioStandIn) -> None:
    channel = TwilioChannel(SID, "not-the-token", FROM, api_url=twilio.url)
    try:
        with pytest.raises(DeliveryError) as failed:
            await send(channel, JANE_PHONE)
    finally:
        await channel.aclose()
    assert failed.value.temporary is False
    assert failed.value.provider_code == 20003
    assert twilio.messages == []


@pytest.mark.parametrize(
    ("status", "code", "temporary"),
    [
        (500, 20500, True),
        (503, 20503, True),
        (429, 20429, True),
        (400, 21408, False),  # region not enabled on the account
        (400, 21610, False),  # the recipient replied STOP
        (403, 20003, False),
    ],
)
async def test_twilio_errors_map_to_temporary_or_permanent(
    twilio: TwilioStandIn, sms: TwilioChannel, status: int, code: int, temporary: bool
) -> None:
    twilio.fail_next(status, code, "Twilio says no")
    with pytest.raises(DeliveryError) as failed:
        await send(sms, JANE_PHONE)
    assert failed.value.temporary is temporary
    assert failed.value.provider_code == code
    assert "Twilio says no" in str(failed.value)

    # The failure was for one request only.
    await send(sms, JANE_PHONE)
    assert len(twilio.messages) == 1


async def test_twilio_rate_limit_says_when_to_retry(
    twilio: TwilioStandIn, sms: TwilioChannel
) -> None:
    twilio.fail_next(429, 20429, "Too Many Requests", retry_after=30)
    with pytest.raises(DeliveryError) as failed:
        await send(sms, JANE_PHONE)
    assert failed.value.temporary is True
    assert failed.value.retry_after == 30.0


async def test_twilio_error_text_shows_the_number_masked(
    twilio: TwilioStandIn, sms: TwilioChannel
) -> None:
    twilio.fail_next(400, 21211, "The 'To' number +447400123456 is not a valid phone number.")
    with pytest.raises(DeliveryError) as failed:
        await send(sms, JANE_PHONE)
    assert "+447400123456" not in str(failed.value)
    assert "+44 ••• ••• 3456" in str(failed.value)


async def test_twilio_down_is_a_temporary_failure() -> None:
    channel = TwilioChannel(SID, TOKEN, FROM, api_url=f"http://127.0.0.1:{unused_port()}")
    try:
        with pytest.raises(DeliveryError) as failed:
            await send(channel, JANE_PHONE)
    finally:
        await channel.aclose()
    assert failed.value.temporary is True


async def test_twilio_timeout_is_a_temporary_failure() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and hangs up
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, httpx.AsyncClient(timeout=0.2) as client:
        channel = TwilioChannel(SID, TOKEN, FROM, api_url=f"http://127.0.0.1:{port}", client=client)
        with pytest.raises(DeliveryError) as failed:
            await send(channel, JANE_PHONE)
    assert failed.value.temporary is True


async def test_a_proxys_html_error_page_is_handled() -> None:
    def bad_gateway(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html><body>Bad Gateway</body></html>")

    async with httpx.AsyncClient(transport=httpx.MockTransport(bad_gateway)) as client:
        channel = TwilioChannel(SID, TOKEN, FROM, client=client)
        with pytest.raises(DeliveryError) as failed:
            await send(channel, JANE_PHONE)
    assert failed.value.temporary is True
    assert failed.value.provider_code is None


async def test_sms_channel_takes_phone_numbers_only(sms: TwilioChannel) -> None:
    with pytest.raises(ValueError):
        await send(sms, JANE)


async def test_sms_delivery_logs_neither_code_nor_number(
    twilio: TwilioStandIn, sms: TwilioChannel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await send(sms, JANE_PHONE)
    await twilio.wait_for_message(JANE_PHONE.value)

    lines = logged(caplog)
    assert JANE_PHONE.masked in lines
    assert CODE not in lines
    assert "447400123456" not in lines


def test_sms_wording_fits_one_message() -> None:
    for app_name in ("Passgram", "Acme", "Northwind Traders"):
        body = sms_message("123456", app_name=app_name, ttl_minutes=10)
        assert sms_segments(body) == 1, body


def test_one_minute_is_singular() -> None:
    assert "It expires in 1 minute." in code_message("1", app_name="Acme", ttl_minutes=1)
    assert "It expires in 1 minute." in sms_message("1", app_name="Acme", ttl_minutes=1)


# --- Development delivery --------------------------------------------------------------------


async def test_development_delivery_is_the_one_log_line_that_shows_a_code(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The only place a code may ever appear in a log, so it must be impossible to miss.
    with caplog.at_level(logging.WARNING, logger="bot.auth.delivery"):
        await send(LogChannel(), JANE)

    [record] = caplog.records
    assert record.levelno == logging.WARNING
    line = record.getMessage()
    assert line.startswith("DEVELOPMENT DELIVERY")
    assert CODE in line
    assert JANE.masked in line
    assert JANE.value not in line


async def test_development_delivery_feeds_the_outbox() -> None:
    outbox: list[tuple[Identifier, str, str]] = []
    channel = LogChannel(sink=lambda to, channel, text: outbox.append((to, channel, text)))
    await send(channel, JANE)
    await send(channel, JANE_PHONE, "135790")

    assert [(to, name) for to, name, _ in outbox] == [(JANE, "log"), (JANE_PHONE, "log")]
    assert outbox[0][2] == code_message(CODE, app_name="Acme", ttl_minutes=10)
    assert "135790" in outbox[1][2]


async def test_channel_names_and_kinds() -> None:
    sms = TwilioChannel(SID, TOKEN, FROM)
    await sms.aclose()
    channels: list[DeliveryChannel] = [
        LogChannel(),
        SmtpChannel("smtp://127.0.0.1:25", SENDER),
        sms,
    ]
    assert [(c.name, sorted(c.kinds)) for c in channels] == [
        ("log", ["email", "phone"]),
        ("email", ["email"]),
        ("sms", ["phone"]),
    ]


# --- The Twilio stand-in itself --------------------------------------------------------------


async def post_message(
    twilio: TwilioStandIn,
    form: dict[str, str],
    *,
    auth: tuple[str, str] = (SID, TOKEN),
    account: str = SID,
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=twilio.url, auth=auth) as client:
        return await client.post(f"/2010-04-01/Accounts/{account}/Messages.json", data=form)


async def test_stand_in_answers_with_a_message_resource(twilio: TwilioStandIn) -> None:
    response = await post_message(twilio, {"To": "+447400123456", "From": FROM, "Body": "Hello"})

    assert response.status_code == 201
    resource = response.json()
    assert re.fullmatch(r"SM[0-9a-f]{32}", resource["sid"])
    assert resource["status"] == "queued"
    assert resource["direction"] == "outbound-api"
    assert (resource["to"], resource["from"], resource["body"]) == ("+447400123456", FROM, "Hello")
    assert resource["account_sid"] == SID
    assert resource["api_version"] == "2010-04-01"
    assert resource["num_segments"] == "1"
    assert resource["uri"] == f"/2010-04-01/Accounts/{SID}/Messages/{resource['sid']}.json"
    created = parsedate_to_datetime(resource["date_created"])
    assert abs(created - datetime.now(UTC)) < timedelta(minutes=1)
    [kept] = twilio.messages
    assert (kept.sid, kept.to, kept.body) == (resource["sid"], "+447400123456", "Hello")
    assert kept["status"] == "queued"  # also readable as the resource


@pytest.mark.parametrize(
    ("auth", "account"),
    [((SID, "wrong"), SID), (("AC" + "0" * 32, TOKEN), SID), ((SID, TOKEN), "AC" + "0" * 32)],
    ids=["wrong-token", "wrong-sid", "other-account"],
)
async def test_stand_in_refuses_bad_credentials_like_twilio(
    twilio: TwilioStandIn, auth: tuple[str, str], account: str
) -> None:
    form = {"To": "+447400123456", "From": FROM, "Body": "Hello"}
    response = await post_message(twilio, form, auth=auth, account=account)

    assert response.status_code == 401
    assert response.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert twilio.messages == []


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"From": FROM, "Body": "Hello"}, 21604),
        ({"To": "07400123456", "From": FROM, "Body": "Hello"}, 21211),
        ({"To": "+44 7400 123456", "From": FROM, "Body": "Hello"}, 21211),
        ({"To": "+447400123456", "Body": "Hello"}, 21603),
        ({"To": "+447400123456", "From": FROM}, 21602),
        ({"To": "+447400123456", "From": FROM, "Body": "  "}, 21602),
        ({"To": "+447400123456", "From": FROM, "Body": "x" * 1601}, 21617),
    ],
)
async def test_stand_in_validates_the_form(
    twilio: TwilioStandIn, form: dict[str, str], code: int
) -> None:
    response = await post_message(twilio, form)

    assert response.status_code == 400
    error = response.json()
    assert (error["code"], error["status"]) == (code, 400)
    assert error["more_info"].endswith(f"/{code}")
    assert twilio.messages == []


async def test_stand_in_unknown_path_gets_twilio_json(twilio: TwilioStandIn) -> None:
    async with httpx.AsyncClient(base_url=twilio.url, auth=(SID, TOKEN)) as client:
        response = await client.get(f"/2010-04-01/Accounts/{SID}/Calls.json")
    assert response.status_code == 404
    assert response.json()["code"] == 20404


async def test_stand_in_wait_times_out_when_nothing_comes(twilio: TwilioStandIn) -> None:
    with pytest.raises(TimeoutError):
        await twilio.wait_for_message("+447400123456", timeout=0.05)


async def test_stand_in_hands_each_message_out_once(
    twilio: TwilioStandIn, sms: TwilioChannel
) -> None:
    other = parse_identifier("+1 201 555 0123")
    waiting = asyncio.create_task(twilio.wait_for_message(JANE_PHONE.value))
    await send(sms, other, "999999")
    await send(sms, JANE_PHONE, "111111")
    await send(sms, JANE_PHONE, "222222")

    assert (await waiting).body.startswith("111111")
    assert (await twilio.wait_for_message(JANE_PHONE.value)).body.startswith("222222")
    assert (await twilio.wait_for_message(other.value)).body.startswith("999999")
    assert len(twilio.messages) == 3


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # two septets each in the GSM alphabet
        ("€" * 81, 2),
        ("’" * 70, 1),  # a curly apostrophe makes it UCS-2
        ("a" * 69 + "’", 1),
        ("a" * 70 + "’", 2),
        ("😀" * 35, 1),  # two UTF-16 units each
        ("😀" * 36, 2),
    ],
)
def test_sms_segments(body: str, segments: int) -> None:
    assert sms_segments(body) == segments
