"""Pure Python rules of the portal: no ORM, no boto3, so they are cheap to test exhaustively."""
