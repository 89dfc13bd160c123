"""The customer classes and payment modes (plain values: kernels and tariffs read them without the
database).
"""

from __future__ import annotations

CUSTOMER_CLASSES = ("residential", "commercial", "industrial", "agricultural", "public")
PAYMENT_MODES = ("postpaid", "prepaid")
