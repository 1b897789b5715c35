CREATE TABLE "default_volume_types" (
	"project_id" text PRIMARY KEY NOT NULL,
	"volume_type_id" uuid NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "qos_specs" (
	"id" uuid PRIMARY KEY NOT NULL,
	"name" varchar(255) NOT NULL,
	"consumer" text DEFAULT 'back-end' NOT NULL,
	"specs" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"deleted" boolean DEFAULT false NOT NULL,
	"deleted_at" timestamp (6) with time zone,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "volume_type_projects" (
	"volume_type_id" uuid NOT NULL,
	"project_id" text NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "volume_type_projects_volume_type_id_project_id_pk" PRIMARY KEY("volume_type_id","project_id")
);
--> statement-breakpoint
CREATE TABLE "volume_types" (
	"id" uuid PRIMARY KEY NOT NULL,
	"name" varchar(255) NOT NULL,
	"description" varchar(255) DEFAULT '' NOT NULL,
	"is_public" boolean DEFAULT true NOT NULL,
	"extra_specs" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"qos_specs_id" uuid,
	"deleted" boolean DEFAULT false NOT NULL,
	"deleted_at" timestamp (6) with time zone,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "snapshots" ADD COLUMN "volume_type_id" uuid;--> statement-breakpoint
ALTER TABLE "volumes" ADD COLUMN "volume_type_id" uuid;--> statement-breakpoint
ALTER TABLE "default_volume_types" ADD CONSTRAINT "default_volume_types_volume_type_id_volume_types_id_fk" FOREIGN KEY ("volume_type_id") REFERENCES "public"."volume_types"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "volume_type_projects" ADD CONSTRAINT "volume_type_projects_volume_type_id_volume_types_id_fk" FOREIGN KEY ("volume_type_id") REFERENCES "public"."volume_types"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "volume_types" ADD CONSTRAINT "volume_types_qos_specs_id_qos_specs_id_fk" FOREIGN KEY ("qos_specs_id") REFERENCES "public"."qos_specs"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "qos_specs_name_idx" ON "qos_specs" USING btree ("name") WHERE not deleted;--> statement-breakpoint
CREATE INDEX "volume_type_projects_project_idx" ON "volume_type_projects" USING btree ("project_id");--> statement-breakpoint
CREATE UNIQUE INDEX "volume_types_name_idx" ON "volume_types" USING btree ("name") WHERE not deleted;--> statement-breakpoint
CREATE INDEX "volume_types_qos_idx" ON "volume_types" USING btree ("qos_specs_id") WHERE qos_specs_id is not null;--> statement-breakpoint
ALTER TABLE "snapshots" ADD CONSTRAINT "snapshots_volume_type_id_volume_types_id_fk" FOREIGN KEY ("volume_type_id") REFERENCES "public"."volume_types"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "volumes" ADD CONSTRAINT "volumes_volume_type_id_volume_types_id_fk" FOREIGN KEY ("volume_type_id") REFERENCES "public"."volume_types"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "snapshots_type_idx" ON "snapshots" USING btree ("volume_type_id") WHERE not deleted;--> statement-breakpoint
CREATE INDEX "volumes_type_idx" ON "volumes" USING btree ("volume_type_id") WHERE not deleted;--> statement-breakpoint
-- Cinder's __DEFAULT__ type, and a public type for each name volumes already carry; every existing
-- volume and snapshot then references its type (an untyped one __DEFAULT__, its quota name kept).
INSERT INTO "volume_types" ("id", "name", "description")
SELECT gen_random_uuid(), '__DEFAULT__', 'Default Volume Type'
 WHERE NOT EXISTS (SELECT FROM "volume_types" WHERE "name" = '__DEFAULT__' AND NOT "deleted");--> statement-breakpoint
INSERT INTO "volume_types" ("id", "name")
SELECT gen_random_uuid(), n."name" FROM (
  SELECT DISTINCT "volume_type" AS "name" FROM "volumes" WHERE "volume_type" <> ''
  UNION SELECT DISTINCT "volume_type" FROM "snapshots" WHERE "volume_type" <> ''
) n WHERE n."name" <> '__DEFAULT__';--> statement-breakpoint
UPDATE "volumes" v SET "volume_type_id" = t."id" FROM "volume_types" t
 WHERE NOT t."deleted" AND t."name" = CASE WHEN v."volume_type" = '' THEN '__DEFAULT__' ELSE v."volume_type" END;--> statement-breakpoint
UPDATE "snapshots" s SET "volume_type_id" = t."id" FROM "volume_types" t
 WHERE NOT t."deleted" AND t."name" = CASE WHEN s."volume_type" = '' THEN '__DEFAULT__' ELSE s."volume_type" END;
