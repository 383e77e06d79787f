// libpq, PostgreSQL's C client, from Debian's libpq-dev.
#include <postgresql/libpq-fe.h>
