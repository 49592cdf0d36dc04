"""Great Expectations suites that gate what is uploaded to Stripe."""
