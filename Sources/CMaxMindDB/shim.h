// libmaxminddb, the reader of MaxMind DB (.mmdb) files: GeoLite2, GeoIP2, DB-IP and compatible databases.
#include <maxminddb.h>
