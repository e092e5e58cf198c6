"""Patron files as FOLIO and Koha write them: their own published samples, reproduced.

Each sample is written here from the owning project's format and example (not copied from it),
with the same fields, values and layout, so that the import is tested on what the field sends
and not on what we imagine. The comment above each says which project file it follows.
"""

from __future__ import annotations

# FOLIO, folio-org/mod-user-import, ramls/examples/userdataimportCollection.json: the API's own
# example of a user-import body. Note ``preferredContactTypeId`` by name ("mail"),
# ``preferredFirstName``, ``customFields`` with a list, ``requestPreference``, ``departments``
# and the ``included`` block, and the flags after the users.
FOLIO_COLLECTION_EXAMPLE = b"""{
  "users": [
    {
      "username": "jhandey",
      "externalSystemId": "111_112",
      "barcode": "1234567",
      "active": true,
      "patronGroup": "staff",
      "personal": {
        "lastName": "Handey",
        "firstName": "Jack",
        "middleName": "Michael",
        "preferredFirstName": "Jackie",
        "phone": "+36 55 230 348",
        "mobilePhone": "+36 55 379 130",
        "dateOfBirth": "1995-10-10",
        "addresses": [
          {
            "countryId": "HU",
            "addressLine1": "Andr\xc3\xa1ssy Street 1.",
            "addressLine2": "",
            "city": "Budapest",
            "region": "Pest",
            "postalCode": "1061",
            "addressTypeId": "Home",
            "primaryAddress": true
          }
        ],
        "preferredContactTypeId": "mail"
      },
      "enrollmentDate": "2017-01-01",
      "expirationDate": "2019-01-01",
      "customFields": {
        "scope": "Design",
        "specialization": [
          "Business",
          "Jurisprudence"
        ]
      },
      "requestPreference": {
        "holdShelf": true,
        "delivery": false,
        "defaultServicePointId": "00000000-0000-1000-a000-000000000000",
        "defaultDeliveryAddressTypeId": "Home",
        "fulfillment": "Hold Shelf"
      },
      "departments": [
        "Accounting",
        "Finance",
        "Chemistry"
      ]
    }
  ],
  "included": {
    "departments": [
      {
        "name": "Accounting",
        "code": "ACC"
      },
      {
        "name": "Finance"
      }
    ]
  },
  "totalRecords": 1,
  "deactivateMissingUsers": true,
  "updateOnlyPresentFields": false,
  "sourceType": "test"
}
"""

# FOLIO, folio-org/mod-user-import, src/test/resources/user-import.json: users without barcodes,
# ``preferredFirstName``, ``personal.pronouns``, a user with nothing but a username and an
# external id, and ``updateOnlyPresentFields: true`` after the users.
FOLIO_USER_IMPORT_TEST = b"""{
    "users": [
        {
            "username": "usul",
            "externalSystemId": "10191",
            "patronGroup": "undergrad",
            "active": true,
            "personal": {
                "firstName": "Paul",
                "lastName": "Atreides",
                "middleName": "Mua'Dib",
                "preferredFirstName": "Usul"
            },
            "customFields": {
                "classYear": "2023"
            }
        },
        {
            "username": "chani",
            "externalSystemId": "10192",
            "patronGroup": "graduate",
            "active": true,
            "personal": {
                "pronouns": "He/Him",
                "firstName": "Chani",
                "lastName": "Kynes",
                "preferredFirstName": "Sihaya"
            },
            "customFields": {
                "classYear": "2024"
            }
        },
        {
            "username": "grouplessperson",
            "externalSystemId": "0"
        }
    ],
    "included": {
        "customFields": [
            {
                "refId": "classYear",
                "selectField": {
                    "options": {
                        "values": [
                            {"value": "2023"},
                            {"value": "2024"},
                            {"value": "2025"},
                            {"value": "Employee"}
                        ]
                    }
                }
            }
        ]
    },
    "totalRecords": 2,
    "deactivateMissingUsers": false,
    "updateOnlyPresentFields": true
}
"""

# FOLIO, a user-import body as a FOLIO migration client sends one to mod-user-import (a published
# Perl client of the user-import endpoint): an empty barcode, a mobile number written without
# its "+" that libphonenumber rejects, the contact type by name ("email").
FOLIO_CLIENT_MOBILE = b"""    {
        "users": [
            {
                "username": "4268755EWL",
                "externalSystemId": "4268755",
                "barcode": "",
                "active": true,
                "patronGroup": "EWL-Webster Students International",
                "type": "patron",
                "personal": {
                    "lastName": "Zhou",
                    "firstName": "Zhenyu",
                    "middleName": "Zhenyu",
                    "preferredFirstName": "",
                    "phone": "",
                    "mobilePhone": "86 130 6785 1536",
                    "dateOfBirth": "",
                    "preferredContactTypeId": "email"
                },
                "expirationDate": "2025-01-10"
            }],
        "totalRecords": 1,
        "deactivateMissingUsers": false,
        "updateOnlyPresentFields": true,
        "sourceType": ""
    }

"""

# Koha, Koha-Community/Koha, t/db_dependent/Koha/Patrons/Import.t: the header and first line of
# its import tests, with ``dateformat`` set to ``us`` (10/16/1965, 12/28/2014, 07/01/2015) and
# phones in the form 7-(388)559-6763.
KOHA_IMPORT_T_HEADER = (
    "cardnumber,surname,firstname,title,othernames,initials,streetnumber,streettype,address,"
    "address2,city,state,zipcode,country,email,phone,mobile,fax,dateofbirth,branchcode,"
    "categorycode,dateenrolled,dateexpiry,userid,password"
)
KOHA_IMPORT_T_US = (
    "1000,Nancy,Jenkins,Dr,,NJ,78,Circle,Bunting,El Paso,Henderson,Texas,79984,United States,"
    "ajenkins0@sourceforge.net,7-(388)559-6763,3-(373)151-4471,8-(509)286-4001,10/16/1965,CPL,"
    "PT,12/28/2014,07/01/2015,jjenkins0,DPQILy"
)
# The same test's line for ``dateformat`` ``metric`` (16/10/1965, 28/12/2014, 01/07/2015).
KOHA_IMPORT_T_METRIC = (
    "1000,Nancy,Jenkins,Dr,,NJ,78,Circle,Bunting,El Paso,Henderson,Texas,79984,United States,"
    "ajenkins0@sourceforge.net,7-(388)559-6763,3-(373)151-4471,8-(509)286-4001,16/10/1965,CPL,"
    "PT,28/12/2014,01/07/2015,jjenkins0,DPQILy"
)
# The same test's header with Koha's extended attributes column, and its line for it.
KOHA_IMPORT_T_ATTRIBUTES_HEADER = KOHA_IMPORT_T_HEADER + ",patron_attributes"
KOHA_IMPORT_T_ATTRIBUTES = (
    "1001,Donna,Sullivan,Mrs,Henry,DS,59,Court,Burrows,Reading,Salt Lake City,Pennsylvania,19605,"
    "United States,hsullivan1@purevolume.com,3-(864)009-3006,7-(291)885-8423,1-(879)095-5038,"
    '09/19/1970,LPL,PT,03/04/2015,07/01/2015,hsullivan1,8j6P6Dmap,"SHOW_BCODE:1,HOBBY:chess"'
)


def koha_file(header: str, *lines: str, bom: bool = True) -> bytes:
    """A borrowers CSV as Koha's tests write it (CRLF line ends), with a BOM when ``bom``."""
    body = "\r\n".join((header, *lines)) + "\r\n"
    return ("\ufeff" if bom else "").encode() + body.encode()
