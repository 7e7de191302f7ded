"""Vocabularies the seed generator draws realistic names, companies and texts from.

Small built-in lists instead of Faker: a lookup in a list is a hundred times cheaper than a Faker
provider call, which is what makes millions of rows a minute possible. Nothing here may contain a tab,
a newline or a backslash: rows go to PostgreSQL's COPY text format as they are.
"""


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_NAMES = _words(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan "
    "Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy Matthew Betty Anthony Sandra "
    "Mark Margaret Donald Ashley Steven Kimberly Andrew Emily Paul Donna Joshua Michelle Kenneth Carol "
    "Kevin Amanda Brian Melissa George Deborah Timothy Stephanie Ronald Dorothy Jason Rebecca Edward "
    "Sharon Jeffrey Laura Ryan Cynthia Jacob Amy Gary Kathleen Nicholas Angela Eric Shirley Jonathan "
    "Brenda Stephen Emma Larry Anna Justin Pamela Scott Nicole Brandon Samantha Benjamin Katherine Samuel "
    "Christine Gregory Helen Alexander Debra Patrick Rachel Frank Carolyn Raymond Janet Jack Maria "
    "Dennis Catherine Jerry Heather Tyler Diane Aaron Olivia Jose Julie Adam Joyce Nathan Victoria "
    "Henry Ruth Zachary Virginia Douglas Lauren Peter Kelly Kyle Christina Noah Joan Ethan Evelyn "
    "Jeremy Judith Walter Andrea Christian Hannah Keith Megan Roger Cheryl Terry Jacqueline Austin "
    "Martha Sean Madison Gerald Teresa Carl Gloria Harold Sara Dylan Janice Arthur Ann Lawrence Kathryn "
    "Jordan Abigail Jesse Sophia Bryan Frances Billy Jean Bruce Alice Gabriel Judy Joe Isabella Logan "
    "Julia Alan Grace Juan Amber Albert Denise Willie Danielle Elijah Marilyn Wayne Beverly Randy "
    "Charlotte Vincent Natalie Mason Theresa Roy Diana Ralph Brittany Bobby Doris Russell Kayla Bradley "
    "Alexis Philip Lori Eugene Marie Priya Wei Mohammed Fatima Hiroshi Yuki Carlos Lucia Mateo Sofia "
    "Ahmed Aisha Lars Ingrid Pierre Camille Giovanni Giulia Raj Ananya Chen Mei Omar Leila Dmitri Olga "
    "Kwame Amara Diego Valentina Sven Astrid Hugo Chloe Felix Clara Ivan Nadia Tariq Zara Kenji Hana"
)

LAST_NAMES = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
    "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark "
    "Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams "
    "Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker "
    "Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper "
    "Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James "
    "Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster "
    "Jimenez Powell Jenkins Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Gonzales Fisher "
    "Vasquez Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds Griffin Wallace Moreno "
    "West Cole Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall "
    "Owens Harrison Fernandez McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb "
    "Tucker Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason "
    "Dixon Munoz Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren "
    "Mills Meyer Rice Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne "
    "Grant Dunn Kelley Spencer Hawkins Arnold Pierce Hansen Peters Santos Hart Bradley Knight Elliott "
    "Cunningham Duncan Armstrong Hudson Carroll Lane Riley Andrews Ray Berry Perkins Hoffman Johnston "
    "Matthews Pena Richards Willis Carpenter Lawrence Sandoval Guerrero George Chapman Rios Estrada "
    "Ortega Watkins Greene Nunez Wheeler Valdez Harper Burke Larson Santiago Maldonado Morrison Franklin "
    "Carlson Austin Dominguez Carr Lawson Jacobs Obrien Lynch Singh Vega Bishop Montgomery Oliver "
    "Jensen Harvey Williamson Gilbert Dean Sims Espinoza Howell Li Wong Reid Hanson Le McCoy Garrett "
    "Burton Fuller Wang Weber Welch Rojas Lucas Marquez Fields Park Yang Little Banks Padilla Day "
    "Walsh Bowman Schultz Luna Fowler Mejia Davidson Acosta Brewer May Holland Juarez Newman Pearson "
    "Curtis Cortez Douglas Schneider Joseph Barrett Navarro Figueroa Keller Avila Wade Molina Stanley "
    "Hopkins Campos Barnett Bates Chambers Caldwell Beck Lambert Miranda Byrd Craig Ayala Lowe Frazier "
    "Powers Neal Leonard Gregory Carrillo Sutton Fleming Rhodes Shelton Schwartz Norris Jennings Watts "
    "Duran Walters Cohen McDaniel Moran Parks Steele Vaughn Becker Holt Deleon Barker Terry Hale Leon "
    "Benson Haynes Horton Miles Lyons Pham Graves Bush Thornton Wolfe Warner Cabrera McKinney "
    "Mann Zimmerman Dawson Lara Fletcher Page McCarthy Love Robles Cervantes Solis Erickson Reeves "
    "Chang Klein Salinas Fuentes Baldwin Daniel Simon Velasquez Hardy Higgins Aguirre Lin Cummings"
)

# Company names are built as "<prefix> <core> <suffix>", "<surname>-<surname> <suffix>" or
# "<city> <core> <suffix>" (see generators.CompanyNames), which gives about 440,000 distinct names.
COMPANY_PREFIXES = _words(
    "Acme Apex Atlas Aurora Beacon Bluebird Boulder Bright Brightwater Cardinal Cascade Cedar Clearview "
    "Cobalt Compass Copper Crescent Crystal Cypress Delta Eagle Echo Elevate Ember Evergreen Falcon "
    "Firefly Frontier Galaxy Garnet Glacier Golden Granite Graphite Greenfield Harbor Harmony Hawk "
    "Helix Highland Horizon Indigo Insight Iron Ivory Jade Juniper Keystone Kinetic Lakeside Landmark "
    "Lantern Legacy Liberty Lighthouse Lunar Magnolia Maple Meridian Metro Midwest Monarch Mosaic "
    "Nimbus Noble North Northwind Nova Oak Oasis Omega Onyx Orbit Orchid Pacific Paragon Peak Pine "
    "Pinnacle Pioneer Polar Prairie Prime Quantum Quartz Radiant Rapid Raven Redwood Ridge River "
    "Riverstone Rocket Sage Sapphire Sequoia Sierra Silver Solar Sparrow Spectrum Sterling Stone "
    "Summit Sunrise Swift Terra Thunder Titan Trident True Twin Unity Vanguard Vector Velocity Vertex "
    "Vista Willow Zenith Zephyr"
)

COMPANY_CORES = _words(
    "Analytics Logistics Health Foods Energy Software Robotics Capital Media Consulting Dynamics "
    "Networks Solutions Pharma Biotech Motors Textiles Metals Materials Farms Brewing Apparel "
    "Insurance Advisors Ventures Labs Digital Data Cloud Security Telecom Aerospace Marine Mining "
    "Construction Engineering Architecture Design Studios Publishing Learning Education Clinics "
    "Diagnostics Devices Instruments Electronics Semiconductors Chemicals Plastics Packaging Paper "
    "Furniture Interiors Realty Properties Hospitality Travel Airlines Freight Shipping Trucking Rail "
    "Utilities Water Power Renewables Wind Agritech Fintech Payments Banking Lending Wealth Retail "
    "Outfitters Markets Supply Wholesale Imports Exports Marketing Events Staffing Recruiting Legal"
)

COMPANY_SUFFIXES = (
    "Inc",
    "LLC",
    "Group",
    "Ltd",
    "GmbH",
    "Corp",
    "Co",
    "Partners",
    "Holdings",
    "SA",
    "BV",
    "PLC",
)

# (city, state or region, country, first digits of a postal code)
CITIES = (
    ("New York", "NY", "United States", "100"),
    ("San Francisco", "CA", "United States", "941"),
    ("Los Angeles", "CA", "United States", "900"),
    ("Chicago", "IL", "United States", "606"),
    ("Austin", "TX", "United States", "787"),
    ("Dallas", "TX", "United States", "752"),
    ("Houston", "TX", "United States", "770"),
    ("Seattle", "WA", "United States", "981"),
    ("Boston", "MA", "United States", "021"),
    ("Denver", "CO", "United States", "802"),
    ("Atlanta", "GA", "United States", "303"),
    ("Miami", "FL", "United States", "331"),
    ("Phoenix", "AZ", "United States", "850"),
    ("Portland", "OR", "United States", "972"),
    ("Minneapolis", "MN", "United States", "554"),
    ("Nashville", "TN", "United States", "372"),
    ("Raleigh", "NC", "United States", "276"),
    ("Salt Lake City", "UT", "United States", "841"),
    ("Pittsburgh", "PA", "United States", "152"),
    ("Detroit", "MI", "United States", "482"),
    ("Toronto", "ON", "Canada", "M5V"),
    ("Vancouver", "BC", "Canada", "V6B"),
    ("Montreal", "QC", "Canada", "H2X"),
    ("London", "England", "United Kingdom", "EC1"),
    ("Manchester", "England", "United Kingdom", "M1 "),
    ("Edinburgh", "Scotland", "United Kingdom", "EH1"),
    ("Dublin", "Leinster", "Ireland", "D02"),
    ("Berlin", "Berlin", "Germany", "101"),
    ("Munich", "Bavaria", "Germany", "803"),
    ("Hamburg", "Hamburg", "Germany", "203"),
    ("Paris", "Ile-de-France", "France", "750"),
    ("Lyon", "Auvergne-Rhone-Alpes", "France", "690"),
    ("Amsterdam", "North Holland", "Netherlands", "101"),
    ("Rotterdam", "South Holland", "Netherlands", "301"),
    ("Madrid", "Madrid", "Spain", "280"),
    ("Barcelona", "Catalonia", "Spain", "080"),
    ("Milan", "Lombardy", "Italy", "201"),
    ("Stockholm", "Stockholm", "Sweden", "111"),
    ("Copenhagen", "Capital Region", "Denmark", "120"),
    ("Zurich", "Zurich", "Switzerland", "800"),
    ("Sydney", "NSW", "Australia", "200"),
    ("Melbourne", "VIC", "Australia", "300"),
    ("Singapore", "Singapore", "Singapore", "018"),
    ("Tokyo", "Tokyo", "Japan", "100"),
    ("Bangalore", "Karnataka", "India", "560"),
    ("Sao Paulo", "SP", "Brazil", "010"),
    ("Mexico City", "CDMX", "Mexico", "066"),
    ("Cape Town", "Western Cape", "South Africa", "800"),
)

STREET_NAMES = _words(
    "Main Oak Maple Cedar Pine Elm Washington Lake Hill Park River Market Church Spring Mill High "
    "Union Center Bridge Harbor Sunset Highland Forest Meadow Ridge Valley Station Broad Commerce "
    "Franklin Madison Jefferson Lincoln King Queen Victoria Garden Orchard Willow"
)
STREET_TYPES = ("Street", "Avenue", "Road", "Boulevard", "Lane", "Drive", "Way", "Place", "Court")

JOB_TITLES = (
    "CEO",
    "CTO",
    "CFO",
    "COO",
    "Chief Marketing Officer",
    "VP of Sales",
    "VP of Engineering",
    "VP of Operations",
    "Head of Procurement",
    "Head of IT",
    "Director of Finance",
    "Director of Marketing",
    "Director of Operations",
    "IT Manager",
    "Procurement Manager",
    "Operations Manager",
    "Marketing Manager",
    "Sales Manager",
    "Product Manager",
    "Project Manager",
    "Office Manager",
    "Purchasing Agent",
    "Business Analyst",
    "Systems Administrator",
    "Software Engineer",
    "Account Executive",
    "Controller",
    "HR Director",
    "Facilities Manager",
    "Owner",
    "Founder",
    "Partner",
)

DEPARTMENTS = (
    "Executive",
    "Sales",
    "Marketing",
    "Finance",
    "Operations",
    "IT",
    "Engineering",
    "Procurement",
    "Human Resources",
    "Legal",
    "Customer Success",
    "Facilities",
)

# What a lead or a deal is about; a lead is named "<company> — <topic>".
DEAL_TOPICS = (
    "{n} seats",
    "{n} licenses",
    "{n} user rollout",
    "annual subscription",
    "enterprise plan",
    "pilot project",
    "platform migration",
    "support contract",
    "onboarding package",
    "data integration",
    "analytics add-on",
    "security review",
    "multi-year renewal",
    "regional expansion",
    "training program",
    "hardware refresh",
    "managed services",
    "consulting engagement",
    "API access",
    "premium support",
)

DESCRIPTIONS = (
    "Came in through the pricing page and asked for a demo.",
    "Evaluating three vendors; decision expected this quarter.",
    "Budget approved, waiting on legal review.",
    "Current contract with a competitor ends soon.",
    "Referred by an existing customer.",
    "Met at the trade show booth; interested in the enterprise tier.",
    "Needs single sign-on and an on-premise option.",
    "Asked for a proposal covering two regions.",
    "Small team now, plans to triple headcount next year.",
    "Wants a pilot before committing to a full rollout.",
    "Price sensitive; compare against the starter plan.",
    "Champion is the head of operations; CFO signs off.",
)

LOST_NOTES = (
    "Went with a cheaper competitor.",
    "Project shelved until next fiscal year.",
    "No reply after three follow-ups.",
    "Requirements did not match our product.",
    "Budget moved to another initiative.",
)

# Activity subjects by type.
ACTIVITY_SUBJECTS = {
    "call": (
        "Discovery call",
        "Follow-up call",
        "Qualification call",
        "Pricing call",
        "Check-in call",
        "Call back about the proposal",
    ),
    "meeting": (
        "Product demo",
        "Kick-off meeting",
        "Quarterly business review",
        "Technical deep dive",
        "Contract negotiation",
        "On-site visit",
    ),
    "task": (
        "Send proposal",
        "Prepare quote",
        "Update account details",
        "Share case studies",
        "Draft contract",
        "Schedule demo",
    ),
    "email": (
        "Send follow-up email",
        "Email pricing sheet",
        "Introduce solution engineer",
        "Confirm meeting time",
        "Send onboarding guide",
        "Reply to security questionnaire",
    ),
    "note": (
        "Notes from the call",
        "Decision makers identified",
        "Competitor mentioned",
        "Budget confirmed",
        "Timeline updated",
        "Requirements summary",
    ),
}

ACTIVITY_DESCRIPTIONS = (
    "Discussed requirements and next steps.",
    "They asked for references in their industry.",
    "Agreed to reconvene after the internal review.",
    "Shared the updated pricing.",
    "Walked through the integration options.",
    "Left a voicemail.",
)

# Every generated address is under the reserved .example top-level domain (RFC 2606), so a seeded
# database can never send a campaign or a reminder to a real mailbox.
PERSONAL_EMAIL_DOMAINS = ("mail.example", "inbox.example", "post.example", "webmail.example")

TAGS = (
    ("High Value", "#198754"),
    ("Enterprise", "#0d6efd"),
    ("SMB", "#6c757d"),
    ("Hot Lead", "#dc3545"),
    ("Partner", "#6f42c1"),
    ("Renewal", "#fd7e14"),
    ("Strategic", "#0dcaf0"),
    ("Follow Up", "#ffc107"),
    ("Decision Maker", "#20c997"),
    ("Champion", "#198754"),
    ("At Risk", "#dc3545"),
    ("Inbound", "#0d6efd"),
    ("Outbound", "#6610f2"),
    ("Webinar", "#d63384"),
    ("Trade Show", "#fd7e14"),
    ("Newsletter", "#6c757d"),
    ("Startup", "#20c997"),
    ("Public Sector", "#495057"),
    ("Upsell", "#0dcaf0"),
    ("VIP", "#ffc107"),
)

LOST_REASONS = (
    "Price too high",
    "Chose a competitor",
    "No budget",
    "No response",
    "Bad timing",
    "Missing feature",
    "Not a fit",
    "Duplicate",
)
