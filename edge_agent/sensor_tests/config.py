"""``[[tests]]`` in the config: which sensor tests exist, on which sensor, how often.

Each table has a ``kind`` that selects its model (a pydantic discriminated union), so a
parameter of one kind given to another is an unknown-key error, like every typo::

    [[tests]]
    name = "climate-noise"        # unique; what `edge-agent test run NAME` and run-test use
    sensor = "climate"
    kind = "noise"                # range | noise | stuck | rate | agreement | self_test | calibration_due
    schedule = "1m"               # omit: on demand only
    alarm = true                  # a failure also raises an `alarm` event
    quantity = "temperature_c"
    samples = 10
    spacing = "200ms"
    max_std = 0.05

This module only declares the models.  The checks that need the sensors and the drivers
(the sensor exists, the quantity is one it reports, its driver has a self-test) are the
settings' cross-checks (``edge_agent.settings.checks``), run by ``load_settings`` after
the generic validation: the settings hold ``[[tests]]``, not the other way round.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge_agent.units import Duration

TestName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
SensorRef = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Quantity = Annotated[str, Field(pattern=r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")]


class _Test(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: TestName
    sensor: SensorRef
    schedule: Duration | None = Field(None, ge=1, description="Run every …; omit to run only on demand")
    alarm: bool = Field(False, description="A failure also raises an alarm event")
    enabled: bool = True
    timeout: Duration = Field(60.0, gt=0, description="A run taking longer is an error")

    def quantities(self) -> list[str]:
        """Quantities of ``sensor`` this test reads (checked against the driver)."""
        return []


class _Sampling(_Test):
    """Tests that take ``samples`` fresh readings, ``spacing`` apart."""

    quantity: Quantity
    samples: int = Field(10, ge=2, le=1000)
    spacing: Duration = Field(0.5, ge=0, le=3600)

    def quantities(self) -> list[str]:
        return [self.quantity]

    @model_validator(mode="after")
    def _fits_timeout(self) -> _Sampling:
        span = (self.samples - 1) * self.spacing
        if span >= self.timeout:
            raise ValueError(
                f"{self.samples} samples {self.spacing:g} s apart take {span:g} s, more than "
                f"timeout = {self.timeout:g} s: lower samples or spacing, or raise timeout"
            )
        return self


class RangeTest(_Test):
    """Every listed quantity within ``[min, max]``: ``limits = { temperature_c = [-10, 50] }``."""

    kind: Literal["range"]
    limits: dict[Quantity, tuple[float, float]] = Field(min_length=1)

    def quantities(self) -> list[str]:
        return list(self.limits)

    @model_validator(mode="after")
    def _ordered(self) -> RangeTest:
        for quantity, (low, high) in self.limits.items():
            if low > high:
                raise ValueError(f"limits.{quantity}: minimum {low:g} is above maximum {high:g}")
        return self


class NoiseTest(_Sampling):
    """Standard deviation over ``samples`` readings at most ``max_std``."""

    kind: Literal["noise"]
    samples: int = Field(10, ge=3, le=1000)
    max_std: float = Field(gt=0)


class StuckTest(_Sampling):
    """Fails when the value changes by no more than ``min_change`` over the samples (default:
    not at all, bit for bit — a frozen sensor)."""

    kind: Literal["stuck"]
    min_change: float = Field(0.0, ge=0)


class RateTest(_Sampling):
    """Fails when the value changes faster than ``max_rate`` units per second between samples."""

    kind: Literal["rate"]
    max_rate: float = Field(gt=0)


class AgreementTest(_Test):
    """``sensor`` and ``other`` agree on a quantity within ``tolerance`` (means of ``samples``)."""

    kind: Literal["agreement"]
    quantity: Quantity
    other: SensorRef
    other_quantity: Quantity | None = Field(None, description="Defaults to quantity")
    tolerance: float = Field(gt=0)
    samples: int = Field(3, ge=1, le=100)
    spacing: Duration = Field(0.2, ge=0, le=60)

    def quantities(self) -> list[str]:
        return [self.quantity]

    @property
    def quantity_of_other(self) -> str:
        return self.other_quantity or self.quantity

    @model_validator(mode="after")
    def _two_sensors(self) -> AgreementTest:
        if self.other == self.sensor and self.quantity_of_other == self.quantity:
            raise ValueError("other: compares the sensor with itself; name a second sensor")
        return self


class SelfTest(_Test):
    """The driver's own self-test (chip id and status, heater, config read-back, frame errors)."""

    kind: Literal["self_test"]
    timeout: Duration = Field(30.0, gt=0)


class CalibrationDueTest(_Test):
    """Fails when the calibration is older than ``max_age``, past its expiry, or missing.

    Without ``quantity``, every calibration in effect on the sensor counts (the oldest
    decides) and at least one must exist.
    """

    kind: Literal["calibration_due"]
    quantity: Quantity | None = None
    max_age: Duration = Field(gt=0)

    def quantities(self) -> list[str]:
        return [self.quantity] if self.quantity else []


TestSettings = Annotated[
    RangeTest | NoiseTest | StuckTest | RateTest | AgreementTest | SelfTest | CalibrationDueTest,
    Field(discriminator="kind"),
]
_MODELS: tuple[type[_Test], ...] = (
    RangeTest,
    NoiseTest,
    StuckTest,
    RateTest,
    AgreementTest,
    SelfTest,
    CalibrationDueTest,
)
TEST_KINDS = ("range", "noise", "stuck", "rate", "agreement", "self_test", "calibration_due")


def drop_union_tag(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """``tests[2].noise.max_std`` → ``tests[2].max_std``: pydantic puts the kind in the path."""
    if len(loc) > 2 and loc[0] == "tests" and loc[2] in TEST_KINDS:
        return loc[:2] + loc[3:]
    return loc


def test_model_of(loc: tuple[str | int, ...], data: dict[str, Any]) -> type[BaseModel] | None:
    """The model of the ``[[tests]]`` table at ``loc`` (by its ``kind``), for "did you mean"."""
    tables = data.get("tests")
    if len(loc) < 2 or not isinstance(loc[1], int) or not isinstance(tables, list) or loc[1] >= len(tables):
        return None
    table = tables[loc[1]]
    kind = table.get("kind") if isinstance(table, dict) else None
    return next((m for m in _MODELS if kind in get_args(m.model_fields["kind"].annotation)), None)
