//! The built-in objects: Account, Contact, Lead, Opportunity, Campaign, CampaignMember, Task,
//! Event, User with realistic standard fields, plus the custom fields and the
//! `Subscription__c` object pgforce's demo and tests use.

use super::ids::prefix;
use super::schema::{Derived, FieldDef, FieldType, ObjectDef, PicklistValue};

/// Chainable tweaks on a [`FieldDef`] to keep the definitions below one line each.
trait FieldExt {
    fn required(self) -> Self;
    fn read_only(self) -> Self;
    fn create_only(self) -> Self;
    fn defaulted(self) -> Self;
    fn ext_id(self) -> Self;
    fn name_field(self) -> Self;
    fn restricted(self) -> Self;
    fn compound(self, name: &str) -> Self;
    fn extra(self, info: &str) -> Self;
    fn child(self, relationship: &str) -> Self;
    fn default_pick(self, value: &str) -> Self;
}

impl FieldExt for FieldDef {
    fn required(mut self) -> Self {
        self.nillable = false;
        self
    }
    fn read_only(mut self) -> Self {
        self.createable = false;
        self.updateable = false;
        self
    }
    fn create_only(mut self) -> Self {
        self.updateable = false;
        self
    }
    fn defaulted(mut self) -> Self {
        self.defaulted_on_create = true;
        self
    }
    fn ext_id(mut self) -> Self {
        self.external_id = true;
        self.unique = true;
        self.id_lookup = true;
        self
    }
    fn name_field(mut self) -> Self {
        self.name_field = true;
        self.id_lookup = true;
        self
    }
    fn restricted(mut self) -> Self {
        self.restricted_picklist = true;
        self
    }
    fn compound(mut self, name: &str) -> Self {
        self.compound_field_name = Some(name.to_string());
        self
    }
    fn extra(mut self, info: &str) -> Self {
        self.extra_type_info = Some(info.to_string());
        self
    }
    fn child(mut self, relationship: &str) -> Self {
        self.child_relationship_name = Some(relationship.to_string());
        self
    }
    fn default_pick(mut self, value: &str) -> Self {
        for p in &mut self.picklist_values {
            p.default = p.value == value;
        }
        self.defaulted_on_create = true;
        self
    }
}

fn text(name: &str, label: &str, length: u32) -> FieldDef {
    let mut f = FieldDef::new(name, label, FieldType::String);
    f.length = length;
    f
}

fn textarea(name: &str, label: &str, length: u32) -> FieldDef {
    let mut f = FieldDef::new(name, label, FieldType::Textarea);
    f.length = length;
    f.extra_type_info = Some("plaintextarea".into());
    f
}

fn typed(name: &str, label: &str, t: FieldType, length: u32) -> FieldDef {
    let mut f = FieldDef::new(name, label, t);
    f.length = length;
    f
}

fn email(name: &str, label: &str) -> FieldDef {
    typed(name, label, FieldType::Email, 80)
}

fn phone(name: &str, label: &str) -> FieldDef {
    typed(name, label, FieldType::Phone, 40)
}

fn url(name: &str, label: &str) -> FieldDef {
    typed(name, label, FieldType::Url, 255).extra("url")
}

fn boolean(name: &str, label: &str) -> FieldDef {
    FieldDef::new(name, label, FieldType::Boolean)
        .required()
        .defaulted()
}

fn date(name: &str, label: &str) -> FieldDef {
    FieldDef::new(name, label, FieldType::Date)
}

fn datetime(name: &str, label: &str) -> FieldDef {
    FieldDef::new(name, label, FieldType::Datetime)
}

fn int(name: &str, label: &str, digits: u32) -> FieldDef {
    let mut f = FieldDef::new(name, label, FieldType::Int);
    f.digits = digits;
    f
}

fn decimal(name: &str, label: &str, t: FieldType, precision: u32, scale: u32) -> FieldDef {
    let mut f = FieldDef::new(name, label, t);
    f.precision = precision;
    f.scale = scale;
    f
}

fn picklist(name: &str, label: &str, values: &[&str]) -> FieldDef {
    let mut f = typed(name, label, FieldType::Picklist, 255);
    f.picklist_values = values
        .iter()
        .map(|v| PicklistValue {
            value: v.to_string(),
            label: v.to_string(),
            default: false,
        })
        .collect();
    f
}

fn multipicklist(name: &str, label: &str, values: &[&str]) -> FieldDef {
    let mut f = picklist(name, label, values);
    f.field_type = FieldType::Multipicklist;
    f.length = 4099;
    f
}

fn reference(name: &str, label: &str, to: &[&str], relationship: &str) -> FieldDef {
    let mut f = FieldDef::new(name, label, FieldType::Reference);
    f.length = 18;
    f.reference_to = to.iter().map(|s| s.to_string()).collect();
    f.relationship_name = Some(relationship.to_string());
    f
}

fn ext_id_field() -> FieldDef {
    text("External_Id__c", "External Id", 255).ext_id()
}

/// Address components and the compound field, e.g. `Billing` → BillingStreet ... BillingAddress.
fn address(prefix_: &str, label: &str) -> Vec<FieldDef> {
    let compound = format!("{prefix_}Address");
    let part = |suffix: &str, plabel: &str, len: u32| {
        text(
            &format!("{prefix_}{suffix}"),
            &format!("{label} {plabel}"),
            len,
        )
        .compound(&compound)
    };
    let mut street =
        textarea(&format!("{prefix_}Street"), &format!("{label} Street"), 255).compound(&compound);
    street.extra_type_info = None;
    let mut lat = decimal(
        &format!("{prefix_}Latitude"),
        &format!("{label} Latitude"),
        FieldType::Double,
        18,
        15,
    );
    lat.compound_field_name = Some(compound.clone());
    let mut lon = decimal(
        &format!("{prefix_}Longitude"),
        &format!("{label} Longitude"),
        FieldType::Double,
        18,
        15,
    );
    lon.compound_field_name = Some(compound.clone());
    let mut whole =
        FieldDef::new(&compound, &format!("{label} Address"), FieldType::Address).read_only();
    whole.calculated = false;
    whole.derived = Some(Derived::Address {
        prefix: prefix_.to_string(),
    });
    vec![
        street,
        part("City", "City", 40),
        part("State", "State/Province", 80),
        part("PostalCode", "Zip/Postal Code", 20),
        part("Country", "Country", 80),
        lat,
        lon,
        picklist(
            &format!("{prefix_}GeocodeAccuracy"),
            &format!("{label} Geocode Accuracy"),
            &[
                "Address",
                "NearAddress",
                "Block",
                "Street",
                "ExtendedZip",
                "Zip",
                "Neighborhood",
                "City",
                "County",
                "State",
                "Unknown",
            ],
        )
        .compound(&compound),
        whole,
    ]
}

/// Id and IsDeleted, the fields every object starts with.
fn head() -> Vec<FieldDef> {
    let mut id = typed("Id", "Record ID", FieldType::Id, 18)
        .read_only()
        .required()
        .defaulted();
    id.id_lookup = true;
    vec![id, boolean("IsDeleted", "Deleted").read_only()]
}

/// Audit fields every object ends with.
fn audit() -> Vec<FieldDef> {
    vec![
        datetime("CreatedDate", "Created Date")
            .read_only()
            .required()
            .defaulted(),
        reference("CreatedById", "Created By ID", &["User"], "CreatedBy")
            .read_only()
            .required()
            .defaulted(),
        datetime("LastModifiedDate", "Last Modified Date")
            .read_only()
            .required()
            .defaulted(),
        reference(
            "LastModifiedById",
            "Last Modified By ID",
            &["User"],
            "LastModifiedBy",
        )
        .read_only()
        .required()
        .defaulted(),
        datetime("SystemModstamp", "System Modstamp")
            .read_only()
            .required()
            .defaulted(),
    ]
}

fn owner() -> FieldDef {
    reference("OwnerId", "Owner ID", &["User"], "Owner")
        .required()
        .defaulted()
}

/// `FirstName`, `LastName` (required, 80) and the derived `Name`.
fn person_name(salutation: bool) -> Vec<FieldDef> {
    let mut v = Vec::new();
    if salutation {
        v.push(picklist(
            "Salutation",
            "Salutation",
            &["Mr.", "Ms.", "Mrs.", "Dr.", "Prof."],
        ));
    }
    v.push(text("FirstName", "First Name", 40));
    v.push(text("LastName", "Last Name", 80).required());
    let mut name = text("Name", "Full Name", 121)
        .read_only()
        .name_field()
        .extra("personname");
    name.derived = Some(Derived::PersonName);
    v.push(name);
    v
}

fn assemble(parts: Vec<Vec<FieldDef>>) -> Vec<FieldDef> {
    parts.into_iter().flatten().collect()
}

fn account() -> ObjectDef {
    let fields = assemble(vec![
        head(),
        vec![
            text("Name", "Account Name", 255).required().name_field(),
            picklist(
                "Type",
                "Account Type",
                &[
                    "Prospect",
                    "Customer - Direct",
                    "Customer - Channel",
                    "Channel Partner / Reseller",
                    "Installation Partner",
                    "Technology Partner",
                    "Other",
                ],
            ),
            reference("ParentId", "Parent Account ID", &["Account"], "Parent")
                .child("ChildAccounts"),
        ],
        address("Billing", "Billing"),
        address("Shipping", "Shipping"),
        vec![
            phone("Phone", "Account Phone"),
            phone("Fax", "Account Fax"),
            text("AccountNumber", "Account Number", 40),
            url("Website", "Website"),
            text("Sic", "SIC Code", 20),
            picklist(
                "Industry",
                "Industry",
                &[
                    "Agriculture",
                    "Apparel",
                    "Banking",
                    "Biotechnology",
                    "Chemicals",
                    "Communications",
                    "Construction",
                    "Consulting",
                    "Education",
                    "Electronics",
                    "Energy",
                    "Engineering",
                    "Entertainment",
                    "Environmental",
                    "Finance",
                    "Food & Beverage",
                    "Government",
                    "Healthcare",
                    "Hospitality",
                    "Insurance",
                    "Machinery",
                    "Manufacturing",
                    "Media",
                    "Not For Profit",
                    "Recreation",
                    "Retail",
                    "Shipping",
                    "Technology",
                    "Telecommunications",
                    "Transportation",
                    "Utilities",
                    "Other",
                ],
            ),
            decimal(
                "AnnualRevenue",
                "Annual Revenue",
                FieldType::Currency,
                18,
                0,
            ),
            int("NumberOfEmployees", "Employees", 8),
            picklist(
                "Ownership",
                "Ownership",
                &["Public", "Private", "Subsidiary", "Other"],
            ),
            text("TickerSymbol", "Ticker Symbol", 20),
            textarea("Description", "Account Description", 32000).extra("plaintextarea"),
            picklist("Rating", "Account Rating", &["Hot", "Warm", "Cold"]),
            text("Site", "Account Site", 80),
            owner(),
        ],
        audit(),
        vec![
            ext_id_field(),
            picklist("Plan__c", "Plan", &["Free", "Pro", "Enterprise"]).restricted(),
            decimal("MRR__c", "MRR", FieldType::Currency, 18, 2),
            decimal("ARR__c", "ARR", FieldType::Currency, 18, 2),
            date("Renewal_Date__c", "Renewal Date"),
            multipicklist(
                "Tags__c",
                "Tags",
                &["vip", "churn-risk", "beta", "partner", "trial"],
            ),
            textarea("Metadata__c", "Metadata", 131072).extra("plaintextarea"),
            datetime("Last_Seen__c", "Last Seen"),
            // Product usage, set by query-driven jobs.
            int("Seats__c", "Seats", 9),
            int("Weekly_Active_Users__c", "Weekly Active Users", 9),
            int("Logins_30d__c", "Logins (30 days)", 9),
        ],
    ]);
    ObjectDef::new("Account", "Account", "Accounts", prefix::ACCOUNT, fields)
}

fn contact() -> ObjectDef {
    let fields = assemble(vec![
        head(),
        vec![reference("AccountId", "Account ID", &["Account"], "Account").child("Contacts")],
        person_name(true),
        address("Mailing", "Mailing"),
        vec![
            phone("Phone", "Business Phone"),
            phone("MobilePhone", "Mobile Phone"),
            email("Email", "Email"),
            text("Title", "Title", 128),
            text("Department", "Department", 80),
            date("Birthdate", "Birthdate"),
            reference("ReportsToId", "Reports To ID", &["Contact"], "ReportsTo").child("ReportsTo"),
            picklist(
                "LeadSource",
                "Lead Source",
                &[
                    "Web",
                    "Phone Inquiry",
                    "Partner Referral",
                    "Purchased List",
                    "Other",
                ],
            ),
            boolean("HasOptedOutOfEmail", "Email Opt Out"),
            textarea("Description", "Contact Description", 32000),
            owner(),
        ],
        audit(),
        vec![ext_id_field()],
    ]);
    ObjectDef::new("Contact", "Contact", "Contacts", prefix::CONTACT, fields)
}

fn lead() -> ObjectDef {
    let fields = assemble(vec![
        head(),
        person_name(true),
        vec![
            text("Title", "Title", 128),
            text("Company", "Company", 255).required(),
        ],
        address("", "Address"),
        vec![
            phone("Phone", "Phone"),
            phone("MobilePhone", "Mobile Phone"),
            email("Email", "Email"),
            url("Website", "Website"),
            picklist(
                "LeadSource",
                "Lead Source",
                &[
                    "Web",
                    "Phone Inquiry",
                    "Partner Referral",
                    "Purchased List",
                    "Other",
                ],
            ),
            picklist(
                "Status",
                "Status",
                &[
                    "Open - Not Contacted",
                    "Working - Contacted",
                    "Closed - Converted",
                    "Closed - Not Converted",
                ],
            )
            .required()
            .default_pick("Open - Not Contacted"),
            picklist(
                "Industry",
                "Industry",
                &[
                    "Agriculture",
                    "Banking",
                    "Education",
                    "Finance",
                    "Healthcare",
                    "Manufacturing",
                    "Retail",
                    "Technology",
                    "Other",
                ],
            ),
            picklist("Rating", "Rating", &["Hot", "Warm", "Cold"]),
            decimal(
                "AnnualRevenue",
                "Annual Revenue",
                FieldType::Currency,
                18,
                0,
            ),
            int("NumberOfEmployees", "Employees", 8),
            boolean("IsConverted", "Converted").read_only(),
            boolean("HasOptedOutOfEmail", "Email Opt Out"),
            textarea("Description", "Description", 32000),
            owner(),
        ],
        audit(),
        vec![
            ext_id_field(),
            // Enrichment from the product database, set by query-driven jobs.
            date("Signup_Date__c", "Signup Date"),
            text("Plan_Tier__c", "Plan Tier", 40),
            datetime("Last_Active__c", "Last Active"),
            decimal(
                "Lifetime_Value__c",
                "Lifetime Value",
                FieldType::Currency,
                18,
                2,
            ),
            int("Prior_Support_Tickets__c", "Prior Support Tickets", 9),
            text("Enrichment_Status__c", "Enrichment Status", 40),
        ],
    ]);
    ObjectDef::new("Lead", "Lead", "Leads", prefix::LEAD, fields)
}

fn opportunity() -> ObjectDef {
    let fields = assemble(vec![
        head(),
        vec![
            reference("AccountId", "Account ID", &["Account"], "Account").child("Opportunities"),
            text("Name", "Name", 120).required().name_field(),
            textarea("Description", "Description", 32000),
            picklist(
                "StageName",
                "Stage",
                &[
                    "Prospecting",
                    "Qualification",
                    "Needs Analysis",
                    "Value Proposition",
                    "Id. Decision Makers",
                    "Perception Analysis",
                    "Proposal/Price Quote",
                    "Negotiation/Review",
                    "Closed Won",
                    "Closed Lost",
                ],
            )
            .required()
            .restricted(),
            decimal("Amount", "Amount", FieldType::Currency, 16, 2),
            decimal("Probability", "Probability (%)", FieldType::Percent, 3, 0),
            date("CloseDate", "Close Date").required(),
            picklist(
                "Type",
                "Opportunity Type",
                &[
                    "Existing Customer - Upgrade",
                    "Existing Customer - Replacement",
                    "Existing Customer - Downgrade",
                    "New Customer",
                ],
            ),
            text("NextStep", "Next Step", 255),
            picklist(
                "LeadSource",
                "Lead Source",
                &[
                    "Web",
                    "Phone Inquiry",
                    "Partner Referral",
                    "Purchased List",
                    "Other",
                ],
            ),
            boolean("IsClosed", "Closed").read_only(),
            boolean("IsWon", "Won").read_only(),
            picklist(
                "ForecastCategoryName",
                "Forecast Category",
                &["Omitted", "Pipeline", "Best Case", "Commit", "Closed"],
            ),
            reference("CampaignId", "Campaign ID", &["Campaign"], "Campaign")
                .child("Opportunities"),
            owner(),
        ],
        audit(),
        vec![ext_id_field()],
    ]);
    ObjectDef::new(
        "Opportunity",
        "Opportunity",
        "Opportunities",
        prefix::OPPORTUNITY,
        fields,
    )
}

fn campaign() -> ObjectDef {
    let fields = assemble(vec![
        head(),
        vec![
            text("Name", "Name", 80).required().name_field(),
            reference("ParentId", "Parent Campaign ID", &["Campaign"], "Parent")
                .child("ChildCampaigns"),
            picklist(
                "Type",
                "Type",
                &[
                    "Conference",
                    "Webinar",
                    "Trade Show",
                    "Public Relations",
                    "Partners",
                    "Referral Program",
                    "Advertisement",
                    "Banner Ads",
                    "Direct Mail",
                    "Email",
                    "Telemarketing",
                    "Other",
                ],
            ),
            picklist(
                "Status",
                "Status",
                &["Planned", "In Progress", "Completed", "Aborted"],
            ),
            date("StartDate", "Start Date"),
            date("EndDate", "End Date"),
            decimal(
                "BudgetedCost",
                "Budgeted Cost in Campaign",
                FieldType::Currency,
                18,
                0,
            ),
            decimal(
                "ActualCost",
                "Actual Cost in Campaign",
                FieldType::Currency,
                18,
                0,
            ),
            boolean("IsActive", "Active"),
            textarea("Description", "Description", 32000),
            owner(),
        ],
        audit(),
        vec![ext_id_field()],
    ]);
    ObjectDef::new(
        "Campaign",
        "Campaign",
        "Campaigns",
        prefix::CAMPAIGN,
        fields,
    )
}

fn campaign_member() -> ObjectDef {
    let fields = assemble(vec![
        head(),
        vec![
            reference("CampaignId", "Campaign ID", &["Campaign"], "Campaign")
                .required()
                .create_only()
                .child("CampaignMembers"),
            reference("LeadId", "Lead ID", &["Lead"], "Lead")
                .create_only()
                .child("CampaignMembers"),
            reference("ContactId", "Contact ID", &["Contact"], "Contact")
                .create_only()
                .child("CampaignMembers"),
            picklist(
                "Status",
                "Status",
                &["Planned", "Received", "Responded", "Sent"],
            )
            .default_pick("Sent"),
            boolean("HasResponded", "Responded").read_only(),
            date("FirstRespondedDate", "First Responded Date").read_only(),
        ],
        audit(),
    ]);
    ObjectDef::new(
        "CampaignMember",
        "Campaign Member",
        "Campaign Members",
        prefix::CAMPAIGN_MEMBER,
        fields,
    )
}

/// Fields shared by Task and Event.
fn activity_fields() -> Vec<FieldDef> {
    vec![
        reference("WhoId", "Name ID", &["Contact", "Lead"], "Who"),
        reference(
            "WhatId",
            "Related To ID",
            &["Account", "Opportunity", "Campaign"],
            "What",
        ),
        typed("Subject", "Subject", FieldType::Combobox, 255).name_field(),
        date("ActivityDate", "Due Date Only"),
        textarea("Description", "Description", 32000),
        owner(),
    ]
}

fn task() -> ObjectDef {
    let fields = assemble(vec![
        head(),
        activity_fields(),
        vec![
            picklist(
                "Status",
                "Status",
                &[
                    "Not Started",
                    "In Progress",
                    "Completed",
                    "Waiting on someone else",
                    "Deferred",
                ],
            )
            .required()
            .default_pick("Not Started"),
            picklist("Priority", "Priority", &["High", "Normal", "Low"])
                .required()
                .default_pick("Normal"),
            boolean("IsClosed", "Closed").read_only(),
            picklist("TaskSubtype", "Task Subtype", &["Task", "Email", "Call"]).create_only(),
            int("CallDurationInSeconds", "Call Duration", 8),
        ],
        audit(),
    ]);
    ObjectDef::new("Task", "Task", "Tasks", prefix::TASK, fields)
}

fn event() -> ObjectDef {
    let fields = assemble(vec![
        head(),
        activity_fields(),
        vec![
            text("Location", "Location", 255),
            boolean("IsAllDayEvent", "All-Day Event"),
            datetime("ActivityDateTime", "Due Date Time"),
            datetime("StartDateTime", "Start Date Time"),
            datetime("EndDateTime", "End Date Time"),
            int("DurationInMinutes", "Duration", 8),
            picklist("ShowAs", "Show Time As", &["Busy", "OutOfOffice", "Free"]),
        ],
        audit(),
    ]);
    ObjectDef::new("Event", "Event", "Events", prefix::EVENT, fields)
}

fn user() -> ObjectDef {
    let mut username = text("Username", "Username", 80).required();
    username.unique = true;
    username.id_lookup = true;
    let fields = assemble(vec![
        head().into_iter().take(1).collect(),
        vec![username],
        person_name(false),
        vec![
            email("Email", "Email").required(),
            text("Alias", "Alias", 8).required(),
            text("CommunityNickname", "Nickname", 40),
            boolean("IsActive", "Active"),
            text("Title", "Title", 80),
            text("Department", "Department", 80),
            picklist(
                "TimeZoneSidKey",
                "Time Zone",
                &[
                    "America/Los_Angeles",
                    "America/New_York",
                    "Europe/London",
                    "Europe/Paris",
                    "GMT",
                ],
            )
            .required(),
            picklist(
                "LocaleSidKey",
                "Locale",
                &["en_US", "en_GB", "fr_FR", "de_DE"],
            )
            .required(),
            picklist("LanguageLocaleKey", "Language", &["en_US", "fr", "de"]).required(),
            picklist(
                "EmailEncodingKey",
                "Email Encoding",
                &["UTF-8", "ISO-8859-1"],
            )
            .required(),
            reference("ManagerId", "Manager ID", &["User"], "Manager").child("ManagedUsers"),
        ],
        audit(),
    ]);
    ObjectDef::new("User", "User", "Users", prefix::USER, fields)
}

/// A custom object with the standard custom-object fields: Id, OwnerId, Name (text 80,
/// defaulted to the Id when not given), IsDeleted and the audit fields, then `extra`.
pub fn custom_object(
    name: &str,
    label: &str,
    plural: &str,
    key_prefix: &str,
    extra: Vec<FieldDef>,
) -> ObjectDef {
    let fields = assemble(vec![
        head(),
        vec![
            owner(),
            text("Name", &format!("{label} Name"), 80)
                .name_field()
                .defaulted(),
        ],
        audit(),
        extra,
    ]);
    ObjectDef::new(name, label, plural, key_prefix, fields)
}

fn subscription() -> ObjectDef {
    let mut account =
        reference("Account__c", "Account", &["Account"], "Account__r").child("Subscriptions__r");
    account.custom = true;
    custom_object(
        "Subscription__c",
        "Subscription",
        "Subscriptions",
        "a00",
        vec![
            ext_id_field(),
            account,
            picklist("Plan__c", "Plan", &["Free", "Pro", "Enterprise"]).restricted(),
            decimal("MRR__c", "MRR", FieldType::Currency, 18, 2),
            picklist(
                "Status__c",
                "Status",
                &["Trialing", "Active", "Past Due", "Canceled"],
            ),
            datetime("Started_At__c", "Started At"),
        ],
    )
}

/// All built-in objects, in describeGlobal order.
pub fn objects() -> Vec<ObjectDef> {
    vec![
        account(),
        campaign(),
        campaign_member(),
        contact(),
        event(),
        lead(),
        opportunity(),
        task(),
        user(),
        subscription(),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::schema::Schema;

    #[test]
    fn standard_schema_builds_with_child_relationships() {
        let s = Schema::standard();
        let account = s.object("account").unwrap();
        assert_eq!(account.key_prefix, "001");
        assert!(account.child_relationship("Contacts").is_some());
        assert!(account.child_relationship("Subscriptions__r").is_some());
        let contact = s.object("Contact").unwrap();
        assert_eq!(contact.relationship("account").unwrap().name, "AccountId");
        assert!(contact.field("lastname").unwrap().is_required());
        assert!(!contact.field("Name").unwrap().createable);
        assert_eq!(s.object_by_prefix("a00").unwrap().name, "Subscription__c");
        assert_eq!(s.object_by_prefix("00v").unwrap().name, "CampaignMember");
    }

    #[test]
    fn describe_reports_byte_length_and_picklists() {
        let s = Schema::standard();
        let f = s
            .object("Contact")
            .unwrap()
            .field("LastName")
            .unwrap()
            .describe();
        assert_eq!(f["byteLength"], 240);
        assert_eq!(f["nillable"], false);
        let stage = s
            .object("Opportunity")
            .unwrap()
            .field("StageName")
            .unwrap()
            .describe();
        assert_eq!(stage["restrictedPicklist"], true);
        assert_eq!(stage["picklistValues"][0]["value"], "Prospecting");
    }
}
