"""The JSON shapes the auditors' pages hand out: replay frames (to the page script) and the audit pack
(to other systems). Each shape is declared once here; webui.audit and webui.audit_pack dump through them.
"""

from __future__ import annotations

from marshmallow import Schema, fields


class ChangeSchema(Schema):
    field = fields.String(required=True)
    before = fields.String(required=True)
    after = fields.String(required=True)


class FrameSchema(Schema):
    """The replay at one event: the path taken, what waits, the data, and what the event was."""

    seq = fields.Integer(required=True)
    kind = fields.String(required=True)
    at = fields.AwareDateTime(required=True)
    when = fields.String(required=True)  # `at` in UK time, as people read it
    who = fields.String(required=True)
    what = fields.String(required=True)
    instance_id = fields.Integer(allow_none=True)
    definition_id = fields.Integer(allow_none=True)
    completed = fields.List(fields.String(), required=True)
    active = fields.List(fields.String(), required=True)
    data = fields.Dict(keys=fields.String(), required=True)
    check = fields.String(required=True)
    changes = fields.List(fields.Nested(ChangeSchema), required=True)
    callouts = fields.List(fields.String(), required=True)


class DiagramSchema(Schema):
    """A version of a process as it ran: its name, its deployment version and its BPMN XML."""

    definition_id = fields.Integer(required=True)
    name = fields.String(required=True)
    version = fields.Integer(required=True)
    xml = fields.String(required=True)


class AnswerSchema(Schema):
    label = fields.String(required=True)
    text = fields.String(required=True)
    items = fields.List(fields.List(fields.Nested(lambda: AnswerSchema())), required=True)


class SectionSchema(Schema):
    title = fields.String(required=True)
    role = fields.String(required=True)
    by = fields.String(required=True)
    at = fields.AwareDateTime(required=True)
    late = fields.Boolean(required=True)
    answers = fields.List(fields.Nested(AnswerSchema), required=True)


class PackChildSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    date_of_birth = fields.Date(allow_none=True)
    school = fields.String(allow_none=True)


class PackInstanceSchema(Schema):
    """One PEP (one run of a process): the version that ran and, once finished, the PEP as finalised."""

    id = fields.Integer(required=True)
    process_id = fields.String(required=True)
    process_name = fields.String(required=True)
    version = fields.Integer(required=True)
    definition_id = fields.Integer(required=True)
    status = fields.String(required=True)
    started_at = fields.AwareDateTime(required=True)
    ended_at = fields.AwareDateTime(allow_none=True)
    previous_instance_id = fields.Integer(allow_none=True)
    pep = fields.List(fields.Nested(SectionSchema), required=True)


class PackEventSchema(Schema):
    """One history row as stored (with its hashes), and how the auditors' timeline reads it."""

    seq = fields.Integer(required=True)
    kind = fields.String(required=True)
    at = fields.AwareDateTime(required=True)
    actor = fields.String(required=True)
    who = fields.String(required=True)
    what = fields.String(required=True)
    instance_id = fields.Integer(allow_none=True)
    task_id = fields.String(allow_none=True)
    data = fields.Dict(keys=fields.String(), required=True)
    prev_hash = fields.String(required=True)
    hash = fields.String(required=True)
    check = fields.String(required=True)


class VerificationSchema(Schema):
    ok = fields.Boolean(required=True)
    problems = fields.List(fields.String(), required=True)
    events = fields.Integer(required=True)
    head_seq = fields.Integer(required=True)
    head_hash = fields.String(required=True)


class PackSchema(Schema):
    """A child's audit pack for machines: the child, every event, every PEP, and the verification."""

    child = fields.Nested(PackChildSchema, required=True)
    generated_at = fields.AwareDateTime(required=True)
    generated_by = fields.String(required=True)
    verification = fields.Nested(VerificationSchema, required=True)
    instances = fields.List(fields.Nested(PackInstanceSchema), required=True)
    events = fields.List(fields.Nested(PackEventSchema), required=True)
