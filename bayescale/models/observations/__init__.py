"""Observation models: how a measured response scatters around a law's curve (one small class each)."""
from .attempts import AttemptsObservation, CensoredAttempts
from .base import Observation
from .mass import BetaMass
from .rate import RATE_MAX, RATE_MIN, BetaBinomialRate, RateObservation, clip_rate
from .student_t import LogStudentT

__all__ = ["AttemptsObservation", "BetaBinomialRate", "BetaMass", "CensoredAttempts", "LogStudentT",
           "Observation", "RATE_MAX", "RATE_MIN", "RateObservation", "clip_rate"]
