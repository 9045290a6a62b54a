"""Issue 13: a fuzz pass over every HTML form the portal serves, with 0 server errors.

The API is fuzzed by schemathesis (scripts/fuzz_api.sh); this package does the same for the pages.
Each test posts hypothesis-generated input the way a browser would: logged in (`force_login`),
CSRF enforced, the token read from the cookie a GET of the page set, the body form-encoded (and
sometimes multipart), redirects followed. It asserts that no answer is a 5xx; the test client
re-raises any exception a view lets through, so a crash fails the test with its traceback and
hypothesis shrinks it to the smallest input.

Every value is drawn from `st.text()` or from a list of known-hostile strings (empty, 100k
characters, NUL and other control characters, CR/LF, RTL overrides, emoji, combining marks,
markup, SQL, template syntax), and for CIDR fields from CIDR-shaped garbage. Ids are drawn from
ones that exist and are the user's, exist and are someone else's, and do not exist.

The world (tests/factories.py rows, no AWS sandbox) is built once per test; each example runs
in a savepoint that is rolled back, so every example meets the same requests in the same states
and nothing is ever committed (so nothing is enqueued for a worker). AWS is a stub that refuses
every call (one account's sync answers "nothing there"), and `socket.getaddrinfo` answers
numeric hosts itself and every name from a table, so nothing leaves the machine.

Forms covered: the new request form (submit, "Run checks", the live htmx check), the request
actions (approve, reject, cancel, retry, decommission, repair and made-up ones, from the request
page and the approvals page), adopting a peering and syncing an account (inventory), the audit
filters and both exports, the request list's filters and the request page's watch poll, the login
pages (the portal's and the admin's), both password change pages, password reset and the reset
link's new-password form, and in the admin (as a superuser) the add and change forms of
departments, AWS accounts and webhooks, the VPC change form with its inline, and the list pages'
search, filters and ordering. Each form is fuzzed two ways: a submission it accepts with one or two
fields made hostile, dropped or repeated (so the rules, plans and use cases behind it see hostile
input), and every field hostile at once. FOUND (test_found_inputs.py) replays every input that has
broken a page, on every run, whatever hypothesis draws.

FORM_FUZZ_SCALE=<factor> multiplies every test's number of examples (default 1).
"""
