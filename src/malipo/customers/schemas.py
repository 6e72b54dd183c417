"""Requests and replies of the customer routes (/api/v1/customers)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, EmailStr, Field, StringConstraints

from malipo.http.schemas import CamelModel, NoControlCharacters

CustomerEmail = Annotated[EmailStr, StringConstraints(max_length=200)]
FullName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), NoControlCharacters]


class CustomerRegisterIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "amina.hassan@gmail.com",
                    "password": "Mandazi-Na-Chai-9",
                    "fullName": "Amina Hassan",
                }
            ]
        }
    )

    email: CustomerEmail = Field(description="The customer's login; unique among your customers")
    password: Annotated[str, StringConstraints(min_length=8, max_length=1000)]
    full_name: FullName | None = None


class CustomerLoginIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "amina.hassan@gmail.com", "password": "Mandazi-Na-Chai-9"}]}
    )

    # Login looks a customer up; it does not judge the address's format.
    email: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class CustomerOut(CamelModel):
    id: uuid.UUID
    client_id: uuid.UUID
    email: str
    full_name: str | None
    mode: Literal["live", "test"]
    created_at: datetime


class CustomerToken(CamelModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105  # the scheme, not a secret
    expires_in: int = Field(description="Seconds until the token expires")
    expires_at: datetime
    customer_id: uuid.UUID
    client_id: uuid.UUID
