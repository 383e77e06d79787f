// MariaDB Connector/C, from Debian's libmariadb-dev.
#include <mariadb/mysql.h>
#include <mariadb/errmsg.h>
#include <mariadb/mysqld_error.h>
